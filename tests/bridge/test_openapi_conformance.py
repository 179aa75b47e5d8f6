"""Every real answer of the bridge validates against /api/openapi.json: each route, each status it answers
with, every SSE event of succeeded, failed and cancelled jobs. Strictly: a field the server sends that the
document does not declare fails too, since a generated client would drop it."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema
import pytest

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import BigOutputPlugin, create_job, read_sse
from tests.stages import PipelinePlugin


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if closed.get("type") == "object" and "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


class Contract:
    """The published document, and validation of one real response against the operation it answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = _closed(copy.deepcopy(document["components"]))
        self.checked: set[tuple[str, str, int]] = set()

    def _validate(self, schema: dict[str, Any], value: Any, where: str) -> None:
        validator = jsonschema.Draft202012Validator({**_closed(schema), "components": self.components})
        failures = sorted(validator.iter_errors(value), key=str)
        assert not failures, f"{where}: {failures[0].message} at {list(failures[0].absolute_path)}"

    def check(self, response: httpx.Response, template: str) -> None:
        method = response.request.method.lower()
        operation = self.document["paths"][template][method]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template} answered an undocumented {status}"
        declared = operation["responses"][status]
        media = response.headers.get("content-type", "").split(";")[0]
        content = declared.get("content", {})
        # The artifacts' bytes are the stage's file (the test stages write text), so only JSON is held to it.
        if media.endswith("json"):
            assert media in content, f"{method} {template} {status}: {media} not in {list(content)}"
        schema = content.get(media, {}).get("schema")
        if schema is not None and media.endswith("json"):
            self._validate(schema, response.json(), f"{method} {template} {status}")
        self.checked.add((template, method, response.status_code))

    def check_events(self, events: list[Any]) -> None:
        for event in events:
            schema = self.document["components"]["schemas"][f"Event-{event.event}"]
            self._validate(schema, event.data, f"SSE {event.event}")


@pytest.fixture
async def contract(client: httpx.AsyncClient) -> Contract:
    return Contract((await client.get("/api/openapi.json")).json())


async def test_answers_of_every_route_and_status_validate_against_the_document(
    client: httpx.AsyncClient, server: ReelcastServer, contract: Contract
) -> None:
    server.host.register(PipelinePlugin(delay=0.02), "pipeline")
    check = contract.check
    check(await client.get("/healthz"), "/healthz")
    check(await client.get("/api/stages"), "/api/stages")

    created = await client.post("/api/jobs", json={"brief": {"topic": "Tides"}})
    check(created, "/api/jobs")
    job_id = created.json()["jobId"]
    check(await client.get(f"/api/jobs/{job_id}"), "/api/jobs/{jobId}")  # queued or running
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    contract.check_events(events.events)
    check(await client.get(f"/api/jobs/{job_id}"), "/api/jobs/{jobId}")  # succeeded
    check(await client.get("/api/jobs", params={"pageSize": "1"}), "/api/jobs")
    check(await client.post(f"/api/jobs/{job_id}/cancel"), "/api/jobs/{jobId}/cancel")  # 409
    check(await client.get(f"/api/jobs/{job_id}/output"), "/api/jobs/{jobId}/output")
    check(
        await client.get(f"/api/jobs/{job_id}/output", headers={"Range": "bytes=0-3"}),
        "/api/jobs/{jobId}/output",
    )
    check(
        await client.get(f"/api/jobs/{job_id}/output", headers={"Range": "bytes=999999-"}),
        "/api/jobs/{jobId}/output",
    )
    check(await client.get(f"/api/jobs/{job_id}/thumbnail"), "/api/jobs/{jobId}/thumbnail")  # 404 E005
    check(await client.get(f"/api/jobs/{job_id}/failure-details"), "/api/jobs/{jobId}/failure-details")  # 404

    # Bad input: every 4xx has the Problem body.
    check(
        await client.post("/api/jobs", content=b"{", headers={"Content-Type": "application/json"}),
        "/api/jobs",
    )
    check(await client.post("/api/jobs", json={"brief": {"topic": "x"}, "voice": {"rate": 5}}), "/api/jobs")
    check(await client.post("/api/jobs", content=b"x", headers={"Content-Type": "text/plain"}), "/api/jobs")
    check(await client.get("/api/jobs", params={"status": "Sleeping"}), "/api/jobs")
    check(await client.get("/api/jobs/nope"), "/api/jobs/{jobId}")
    check(await client.get("/api/jobs/nope/events"), "/api/jobs/{jobId}/events")
    check(
        await client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": "x"}),
        "/api/jobs/{jobId}/events",
    )
    check(await client.get("/api/events", params={"jobs": ""}), "/api/events")
    multi = await read_sse(client, "/api/events", params={"jobs": job_id})
    contract.check_events(multi.events)


async def test_failed_and_cancelled_jobs_and_their_events_validate_against_the_document(
    client: httpx.AsyncClient, server: ReelcastServer, contract: Contract
) -> None:
    server.host.register(PipelinePlugin(fail_at="render"), "pipeline")
    failed = await create_job(client)
    contract.check_events((await read_sse(client, f"/api/jobs/{failed['jobId']}/events")).events)
    contract.check(await client.get(f"/api/jobs/{failed['jobId']}"), "/api/jobs/{jobId}")
    details = await client.get(f"/api/jobs/{failed['jobId']}/failure-details")
    assert details.status_code == 200
    contract.check(details, "/api/jobs/{jobId}/failure-details")

    server.host.unregister(name="pipeline")
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    hanging = await create_job(client)
    cancelled = await client.post(f"/api/jobs/{hanging['jobId']}/cancel")
    assert cancelled.status_code == 202
    contract.check(cancelled, "/api/jobs/{jobId}/cancel")
    contract.check_events((await read_sse(client, f"/api/jobs/{hanging['jobId']}/events")).events)
    contract.check(
        await client.get(f"/api/jobs/{hanging['jobId']}/failure-details"), "/api/jobs/{jobId}/failure-details"
    )
    contract.check(await client.get("/api/jobs", params={"status": "Failed"}), "/api/jobs")


async def test_an_output_with_every_optional_field_validates_against_the_document(
    client: httpx.AsyncClient, server: ReelcastServer, contract: Contract
) -> None:
    server.host.register(BigOutputPlugin(), "big")
    job = await create_job(client)
    contract.check_events((await read_sse(client, f"/api/jobs/{job['jobId']}/events")).events)
    contract.check(await client.get(f"/api/jobs/{job['jobId']}"), "/api/jobs/{jobId}")


async def test_the_spec_of_a_job_has_every_default_filled_in_captions_off_included(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    job = await create_job(client)
    render = job["spec"]["render"]
    assert render["captions"] is False
    assert render["captionMode"] == "burned"
    document = (await client.get("/api/openapi.json")).json()
    schemas = document["components"]["schemas"]
    spec_schema = schemas[schemas["Job"]["properties"]["spec"]["$ref"].rsplit("/", 1)[1]]
    for section, ref in spec_schema["properties"].items():
        declared = schemas[ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else None
        if declared is not None:
            assert set(declared["required"]) == set(job["spec"][section]), section
    await read_sse(client, f"/api/jobs/{job['jobId']}/events")


async def test_the_media_answers_validate_against_the_document(
    client: httpx.AsyncClient, contract: Contract
) -> None:
    from tests.media import png_bytes

    check = contract.check
    uploaded = await client.post("/api/media", files={"file": ("p.png", png_bytes(), "image/png")})
    check(uploaded, "/api/media")
    media_id = uploaded.json()["mediaId"]
    check(await client.get("/api/media"), "/api/media")
    check(await client.get(f"/api/media/{media_id}"), "/api/media/{mediaId}")
    check(
        await client.post("/api/media", files={"file": ("t.png", b"text, not a picture", "image/png")}),
        "/api/media",
    )
    check(await client.post("/api/media", json={}), "/api/media")
    check(await client.get("/api/media", params={"pageSize": "x"}), "/api/media")
    check(await client.delete(f"/api/media/{media_id}"), "/api/media/{mediaId}")
    check(await client.get(f"/api/media/{media_id}"), "/api/media/{mediaId}")
    assert {status for template, _, status in contract.checked if template.startswith("/api/media")} == {
        200,
        201,
        204,
        400,
        404,
        415,
    }


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver is on loopback: the operator's allow-list, read when the server starts (so this fixture
    comes first in the test's arguments)."""
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")


async def test_the_webhook_answers_validate_against_the_document(
    loopback_allowed: None, client: httpx.AsyncClient, server: ReelcastServer, contract: Contract
) -> None:
    from tests.webhook_receiver import running_receiver

    server.host.register(PipelinePlugin(delay=0.02), "pipeline")
    check = contract.check
    with running_receiver() as receiver:
        created = await client.post(
            "/api/webhooks", json={"url": receiver.url, "filter": "statuses", "statuses": ["Failed"]}
        )
        assert created.status_code == 201, created.text
        check(created, "/api/webhooks")
        webhook = f"/api/webhooks/{created.json()['webhookId']}"
        job = await create_job(client)
        await read_sse(client, f"/api/jobs/{job['jobId']}/events")
        replayed = await client.post(f"{webhook}/replay", json={"jobId": job["jobId"], "fromSequence": 0})
        check(replayed, "/api/webhooks/{webhookId}/replay")
        check(await client.post(f"{webhook}/rotate-secret"), "/api/webhooks/{webhookId}/rotate-secret")
        check(await client.get("/api/webhooks", params={"pageSize": "1"}), "/api/webhooks")
        check(await client.delete(webhook), "/api/webhooks/{webhookId}")
        # 10.0.0.0/8 is refused (E091): only loopback is allowed here.
        check(await client.post("/api/webhooks", json={"url": "http://10.1.2.3/hooks"}), "/api/webhooks")
        check(await client.post("/api/webhooks", json={"url": "ftp://x"}), "/api/webhooks")
        check(await client.post("/api/webhooks", json={"url": 5}), "/api/webhooks")
        check(
            await client.post("/api/webhooks", content=b"x", headers={"Content-Type": "text/plain"}),
            "/api/webhooks",
        )
        check(await client.get("/api/webhooks", params={"pageSize": "x"}), "/api/webhooks")
        check(await client.delete(webhook), "/api/webhooks/{webhookId}")
        check(await client.post(f"{webhook}/rotate-secret"), "/api/webhooks/{webhookId}/rotate-secret")
        check(
            await client.post(f"{webhook}/replay", json={"fromSequence": -1}),
            "/api/webhooks/{webhookId}/replay",
        )
    assert {status for template, _, status in contract.checked if template.startswith("/api/webhooks")} == {
        200,
        201,
        202,
        204,
        400,
        404,
        415,
    }
