"""The webhook REST routes on a real server and bridge: an endpoint registered over REST receives a real
job's events at a real loopback receiver (verified with ``standardwebhooks``), lists with its filter,
``failing`` and ``lastError``, pages like GET /api/jobs, rotates, replays and deletes; bad input is a
catalogue error (docs/api.md, Webhooks)."""

from __future__ import annotations

import httpx
import pytest

from tests.bridge.conftest import create_job, read_sse
from tests.bridge.test_rest import assert_problem
from tests.stages import PipelinePlugin
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhooks.conftest import wait_until


@pytest.fixture(autouse=True)
def loopback_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's allow-list (the receiver lives on loopback) and short retries; read by the server
    when it starts, so before the ``server`` fixture (autouse fixtures come first)."""
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    monkeypatch.setenv("REELCAST_WEBHOOK_RETRY_BASE", "0.05")
    monkeypatch.setenv("REELCAST_WEBHOOK_RETRY_MAX", "0.1")
    monkeypatch.setenv("REELCAST_WEBHOOK_MAX_ATTEMPTS", "2")


async def test_an_endpoint_created_over_rest_receives_a_real_job_and_rotates_replays_deletes(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    with running_receiver() as receiver:
        response = await client.post(
            "/api/webhooks", json={"url": receiver.url, "filter": "terminal", "labels": {"team": "video"}}
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["secret"].startswith("whsec_")
        assert created["webhookId"].startswith("wh_")
        assert {k: created[k] for k in ("url", "filter", "statuses", "labels", "failing", "lastError")} == {
            "url": receiver.url,
            "filter": "terminal",
            "statuses": [],
            "labels": {"team": "video"},
            "failing": False,
            "lastError": "",
        }
        receiver.secrets = [created["secret"]]
        other = await client.post("/api/jobs", json={"brief": {"topic": "Unlabelled"}})
        job = (
            await client.post("/api/jobs", json={"brief": {"topic": "Otters"}, "labels": {"team": "video"}})
        ).json()
        events = (await read_sse(client, f"/api/jobs/{job['jobId']}/events")).events
        await read_sse(client, f"/api/jobs/{other.json()['jobId']}/events")
        await wait_until(lambda: len(receiver.deliveries) == 1)
        (delivery,) = receiver.deliveries
        assert delivery.payload["jobId"] == job["jobId"]
        assert delivery.payload["event"] == "job-completed" == events[-1].event

        listed = (await client.get("/api/webhooks")).json()
        assert listed["nextPageToken"] == ""
        assert [w["webhookId"] for w in listed["webhooks"]] == [created["webhookId"]]
        assert "secret" not in listed["webhooks"][0]
        assert listed["webhooks"][0]["failing"] is False

        rotated = await client.post(f"/api/webhooks/{created['webhookId']}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_") and new_secret != created["secret"]
        assert rotated.json()["webhookId"] == created["webhookId"]

        # A replay of the job from its first event: the terminal filter keeps only the completion, signed
        # with the new secret too, under the original webhook-id.
        receiver.secrets = [new_secret]
        replay = await client.post(
            f"/api/webhooks/{created['webhookId']}/replay", json={"jobId": job["jobId"], "fromSequence": 1}
        )
        assert replay.status_code == 202, replay.text
        assert replay.json() == {"webhookId": created["webhookId"], "replayed": 1}
        await wait_until(lambda: len(receiver.deliveries) == 2)
        assert receiver.deliveries[1].headers["webhook-id"] == delivery.headers["webhook-id"]
        assert receiver.deliveries[1].verified_with == [new_secret]

        # The endpoint's deliveries since a time before the job: the completion once more. A time after it
        # has none.
        since = await client.post(
            f"/api/webhooks/{created['webhookId']}/replay", json={"since": "2026-01-01T00:00:00Z"}
        )
        assert (since.status_code, since.json()["replayed"]) == (202, 1), since.text
        await wait_until(lambda: len(receiver.deliveries) == 3)
        assert receiver.deliveries[2].headers["webhook-id"] == delivery.headers["webhook-id"]
        later = await client.post(
            f"/api/webhooks/{created['webhookId']}/replay", json={"since": "2999-01-01T00:00:00+02:00"}
        )
        assert (later.status_code, later.json()["replayed"]) == (202, 0), later.text

        assert (await client.delete(f"/api/webhooks/{created['webhookId']}")).status_code == 204
        assert (await client.get("/api/webhooks")).json()["webhooks"] == []
        for method, path in (
            ("DELETE", ""),
            ("POST", "/rotate-secret"),
        ):
            gone = await client.request(method, f"/api/webhooks/{created['webhookId']}{path}")
            assert_problem(gone, 404, "E096-WEBHOOK_NOT_FOUND")


async def test_a_receiver_that_always_fails_marks_the_endpoint_failing_with_its_last_error(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    with running_receiver(Receiver(fail_first=10**9)) as receiver:
        created = (
            await client.post(
                "/api/webhooks",
                json={"url": receiver.url, "filter": "statuses", "statuses": ["Succeeded", "Failed"]},
            )
        ).json()
        assert created["statuses"] == ["Succeeded", "Failed"] and created["filter"] == "statuses"
        job = await create_job(client)
        await read_sse(client, f"/api/jobs/{job['jobId']}/events")

        async def failing() -> bool:
            listed = (await client.get("/api/webhooks")).json()["webhooks"]
            return bool(listed[0]["failing"])

        await wait_until(failing)
        (listed,) = (await client.get("/api/webhooks")).json()["webhooks"]
        assert listed["lastError"].startswith("E093-WEBHOOK_DELIVERY_FAILED"), listed


async def test_webhooks_page_like_jobs(client: httpx.AsyncClient) -> None:
    with running_receiver() as receiver:
        ids = []
        for n in range(3):
            response = await client.post("/api/webhooks", json={"url": f"{receiver.url}/{n}"})
            assert response.status_code == 201, response.text
            assert response.json()["filter"] == "everything"
            ids.append(response.json()["webhookId"])
        seen, token = [], ""
        while True:
            page = (await client.get("/api/webhooks", params={"pageSize": 2, "pageToken": token})).json()
            assert len(page["webhooks"]) <= 2
            seen += [w["webhookId"] for w in page["webhooks"]]
            token = page["nextPageToken"]
            if not token:
                break
        assert seen == sorted(ids)
        bad = assert_problem(await client.get("/api/webhooks?pageSize=x"), 400, "E002-INVALID_REQUEST")
        assert bad["violations"] == [
            {"field": "pageSize", "description": "must be a whole number from 0 to 1000"}
        ]
        assert_problem(await client.get("/api/webhooks?pageToken=nope"), 400, "E002-INVALID_REQUEST")


async def test_bad_input_is_a_catalogue_error(client: httpx.AsyncClient) -> None:
    with running_receiver() as receiver:
        assert_problem(
            await client.post("/api/webhooks", json={"url": "ftp://example.com/x"}),
            400,
            "E090-WEBHOOK_URL_INVALID",
        )
        assert_problem(
            await client.post("/api/webhooks", json={"url": "not a url"}), 400, "E090-WEBHOOK_URL_INVALID"
        )
        # Not allowed: the operator allowed 127.0.0.0/8 only.
        assert_problem(
            await client.post("/api/webhooks", json={"url": "http://10.1.2.3/hooks"}),
            400,
            "E091-WEBHOOK_ADDRESS_NOT_ALLOWED",
        )
        missing = assert_problem(await client.post("/api/webhooks", json={}), 400, "E002-INVALID_REQUEST")
        assert missing["violations"][0]["field"] == "url"  # type: ignore[index]
        for body, field in (
            ({"url": receiver.url, "filter": "statuses"}, "statuses"),
            ({"url": receiver.url, "filter": "terminal", "statuses": ["Failed"]}, "statuses"),
            ({"url": receiver.url, "filter": "some"}, "filter"),
            ({"url": receiver.url, "statuses": ["Cancelled"]}, "statuses[0]"),
            ({"url": receiver.url, "extra": 1}, "extra"),
        ):
            problem = assert_problem(
                await client.post("/api/webhooks", json=body), 400, "E002-INVALID_REQUEST"
            )
            assert problem["violations"][0]["field"] == field, problem  # type: ignore[index]
        assert_problem(
            await client.post("/api/webhooks", content=b"url", headers={"content-type": "text/plain"}),
            415,
            "E012-UNSUPPORTED_MEDIA_TYPE",
        )
        created = (await client.post("/api/webhooks", json={"url": receiver.url})).json()
        replay = f"/api/webhooks/{created['webhookId']}/replay"
        assert_problem(
            await client.post(replay, json={"jobId": "0" * 32, "fromSequence": 1}), 404, "E003-JOB_NOT_FOUND"
        )
        negative = assert_problem(
            await client.post(replay, json={"jobId": "0" * 32, "fromSequence": -1}),
            400,
            "E002-INVALID_REQUEST",
        )
        assert negative["violations"][0]["field"] == "fromSequence"  # type: ignore[index]
        naive = assert_problem(
            await client.post(replay, json={"since": "2026-12-01T09:00:00"}), 400, "E002-INVALID_REQUEST"
        )
        assert naive["violations"][0]["field"] == "since"  # type: ignore[index]
        # Ids of another shape are not passed on at all.
        assert_problem(await client.delete("/api/webhooks/wh_nope"), 404, "E096-WEBHOOK_NOT_FOUND")
        assert_problem(
            await client.post(f"/api/webhooks/wh_{'0' * 32}/rotate-secret"), 404, "E096-WEBHOOK_NOT_FOUND"
        )
