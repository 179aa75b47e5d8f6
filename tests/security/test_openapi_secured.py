"""With authentication on, the answers of the login and token routes, the 401s and another user's 404s
validate against /api/openapi.json too (tests/bridge/test_openapi_conformance.py covers the rest)."""

from __future__ import annotations

from tests.bridge.test_openapi_conformance import Contract
from tests.security.conftest import Secured


async def test_credential_routes_and_refusals_validate_against_the_document(secured: Secured) -> None:
    anonymous, alice, bob = secured.http(None), secured.http("alice"), secured.http("bob")
    contract = Contract((await anonymous.get("/api/openapi.json")).json())
    job = await secured.create_job("alice")
    await secured.finish("alice", job.id)

    contract.check(await anonymous.get("/api/jobs"), "/api/jobs")  # 401
    contract.check(await anonymous.get(f"/api/jobs/{job.id}"), "/api/jobs/{jobId}")  # 401
    contract.check(await bob.get(f"/api/jobs/{job.id}"), "/api/jobs/{jobId}")  # 404
    contract.check(await bob.get(f"/api/jobs/{job.id}/output"), "/api/jobs/{jobId}/output")  # 404
    contract.check(await alice.get(f"/api/jobs/{job.id}"), "/api/jobs/{jobId}")
    token = await alice.post(f"/api/jobs/{job.id}/stream-token")
    assert token.status_code == 201
    contract.check(token, "/api/jobs/{jobId}/stream-token")
    contract.check(await bob.post(f"/api/jobs/{job.id}/stream-token"), "/api/jobs/{jobId}/stream-token")
    opened = await anonymous.post(
        "/api/session", json={"apiKey": secured.keys["alice"]}, headers={"Origin": secured.base_url}
    )
    assert opened.status_code == 201, opened.text
    contract.check(opened, "/api/session")
    contract.check(
        await anonymous.post("/api/session", json={"apiKey": "nope"}, headers={"Origin": secured.base_url}),
        "/api/session",
    )
    contract.check(await anonymous.get("/healthz"), "/healthz")
