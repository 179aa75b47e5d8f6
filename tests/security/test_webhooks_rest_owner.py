"""The webhook REST routes with authentication on: alice's endpoint is hers alone. Bob's list does not show
it, and each of its routes answers him 404 E096 as for a missing endpoint, so ids cannot be probed; a
request without a credential is 401, as on the job routes."""

from __future__ import annotations

import pytest

from tests.bridge.test_rest import assert_problem
from tests.security.conftest import SecuredFactory
from tests.webhook_receiver import running_receiver


async def test_another_users_webhook_is_not_found_over_rest(
    start_secured: SecuredFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    secured = await start_secured()
    alice, bob = secured.http("alice"), secured.http("bob")
    with running_receiver() as receiver:
        created = await alice.post("/api/webhooks", json={"url": receiver.url, "filter": "terminal"})
        assert created.status_code == 201, created.text
        webhook_id = created.json()["webhookId"]
        # Bob's own job: with alice's, the server answers for the job first (E003).
        job = await secured.create_job("bob")

        assert (await bob.get("/api/webhooks")).json() == {"webhooks": [], "nextPageToken": ""}
        for method, path, body in (
            ("DELETE", "", None),
            ("POST", "/rotate-secret", None),
            ("POST", "/replay", {"jobId": job.id, "fromSequence": 1}),
        ):
            answer = await bob.request(method, f"/api/webhooks/{webhook_id}{path}", json=body)
            assert_problem(answer, 404, "E096-WEBHOOK_NOT_FOUND")
        assert_problem(await secured.http(None).get("/api/webhooks"), 401, "E020-UNAUTHENTICATED")
        assert_problem(
            await secured.http(None).post("/api/webhooks", json={"url": receiver.url}),
            401,
            "E020-UNAUTHENTICATED",
        )
        # Still alice's, untouched.
        (listed,) = (await alice.get("/api/webhooks")).json()["webhooks"]
        assert listed["webhookId"] == webhook_id
