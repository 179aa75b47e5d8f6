"""API keys: sent on every call (unary and streaming, async and sync), taken from REELCAST_API_KEY by default;
a missing or unknown key is a typed UnauthenticatedError, never retried."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from reelcast.client import AsyncClient, Client, RetryPolicy, UnauthenticatedError
from tests.client.conftest import HANG_TIMEOUT, Secured

UNKNOWN_KEY = "rck_00000000_" + "A" * 43
# If an authentication failure were retried, a watch with this policy would take hours: the test would hang.
PATIENT = RetryPolicy(max_attempts=10_000, initial_backoff=1.0, max_backoff=60.0, max_elapsed=None)


async def test_a_valid_key_is_sent_on_every_call(secured: Secured) -> None:
    async with AsyncClient(secured.server.target, api_key=secured.keys["alice"]) as client:
        job = await client.create_job(topic="Alice's")
        assert job.owner == "alice"
        events = [event async for event in client.watch_job(job.id)]
        assert events[-1].sequence == (await client.get_job(job.id)).last_sequence
        assert [j.id async for j in client.list_jobs()] == [job.id]
        assert await client.list_stages()
    async with AsyncClient(secured.server.target, api_key=secured.keys["bob"]) as bob:
        assert [j.id async for j in bob.list_jobs()] == []


async def test_the_key_defaults_to_reelcast_api_key(
    secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELCAST_API_KEY", secured.keys["bob"])
    async with AsyncClient(secured.server.target) as client:
        assert (await client.create_job(topic="Bob's")).owner == "bob"
    # An explicit empty key overrides the environment.
    async with AsyncClient(secured.server.target, api_key="") as client:
        with pytest.raises(UnauthenticatedError):
            await client.list_stages()


@pytest.mark.parametrize("key", ["", UNKNOWN_KEY], ids=["missing", "unknown"])
async def test_a_missing_or_unknown_key_is_a_typed_unauthenticated_error(secured: Secured, key: str) -> None:
    async with AsyncClient(secured.server.target, api_key=key, retry=PATIENT) as client:
        with pytest.raises(UnauthenticatedError) as unary:
            await client.create_job(topic="x", correlation_id="no-key-1")
        with pytest.raises(UnauthenticatedError) as streaming:
            await asyncio.wait_for(_drain(client, "0123456789abcdef"), HANG_TIMEOUT)
    for failure in (unary.value, streaming.value):
        assert failure.status == grpc.StatusCode.UNAUTHENTICATED
        assert failure.code == "E020-UNAUTHENTICATED"
        assert "reelcast keys create" in failure.remediation
    assert unary.value.correlation_id == "no-key-1"
    assert streaming.value.correlation_id


@pytest.mark.parametrize("key", ["", UNKNOWN_KEY], ids=["missing", "unknown"])
async def test_the_sync_client_raises_the_same_typed_error(secured: Secured, key: str) -> None:
    def call() -> UnauthenticatedError:
        with Client(secured.server.target, api_key=key, retry=PATIENT) as client:
            try:
                list(client.watch_job("0123456789abcdef"))
            except UnauthenticatedError as error:
                return error
        raise AssertionError("the watch did not fail")

    failure = await asyncio.wait_for(asyncio.to_thread(call), HANG_TIMEOUT)
    assert failure.code == "E020-UNAUTHENTICATED"


async def test_another_users_job_is_not_found(secured: Secured) -> None:
    from reelcast.client import NotFoundError

    async with (
        AsyncClient(secured.server.target, api_key=secured.keys["alice"]) as alice,
        AsyncClient(secured.server.target, api_key=secured.keys["bob"]) as bob,
    ):
        job = await alice.create_job(topic="Private")
        with pytest.raises(NotFoundError):
            await bob.get_job(job.id)
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(_drain(bob, job.id), HANG_TIMEOUT)


async def test_a_key_revoked_mid_watch_ends_the_watch_without_reconnecting(secured_hanging: Secured) -> None:
    server = secured_hanging.server
    async with AsyncClient(server.target, api_key=secured_hanging.keys["alice"], retry=PATIENT) as client:
        job = await client.create_job(topic="Revoked")
        seen: list[str] = []

        async def watch() -> None:
            async for event in client.watch_job(job.id):
                seen.append(event.message)
                if event.message == "hanging":
                    key_id = next(key.id for key in await server.keys.alist() if key.user == "alice")
                    await server.keys.arevoke(key_id)

        with pytest.raises(UnauthenticatedError) as failure:
            await asyncio.wait_for(watch(), HANG_TIMEOUT)
    assert seen[-1] == "hanging"
    assert failure.value.code == "E020-UNAUTHENTICATED"


async def test_closing_the_client_ends_a_running_watch(secured_hanging: Secured) -> None:
    from reelcast.client import CallCancelledError

    client = AsyncClient(secured_hanging.server.target, api_key=secured_hanging.keys["bob"], retry=PATIENT)
    job = await client.create_job(topic="Closed")
    hanging = asyncio.Event()

    async def watch() -> None:
        async for event in client.watch_job(job.id):
            if event.message == "hanging":
                hanging.set()

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(hanging.wait(), HANG_TIMEOUT)
    await client.close()
    with pytest.raises(CallCancelledError):
        await asyncio.wait_for(watching, HANG_TIMEOUT)
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_job(job.id)


async def _drain(client: AsyncClient, job_id: str) -> None:
    async for _ in client.watch_job(job_id):
        pass
