"""Browser sessions belong to one user and live in the backend: one user's logins never end another's
sessions, a session works on every bridge of a deployment and after a bridge restart, and it ends with its
key or its logout everywhere. The store's session contract holds on SQLite and NATS alike."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelcast.bridge.app import create_app
from reelcast.bridge.auth import SESSION_COOKIE
from reelcast.bridge.server import serve_app
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.security.keys import ApiKeys, KeyStore
from tests.nats.natsproc import NatsServer
from tests.security.conftest import HANG_TIMEOUT, Secured, SecuredFactory

# Several times bob's own cap: his logins end his oldest sessions many times over, and never alice's. (It
# once was 10,050, past a global pool of 10,000 that no longer exists; 10,000 logins took 90 s of CI.)
LOGINS = 5 * Settings().max_sessions_per_user


@contextlib.asynccontextmanager
async def bridge_in_front_of(grpc_target: str) -> AsyncIterator[str]:
    app = create_app(grpc_target, auth_required=True)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
    try:
        port = await asyncio.wait_for(ready, HANG_TIMEOUT)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, HANG_TIMEOUT)


def another_bridge(secured: Secured) -> contextlib.AbstractAsyncContextManager[str]:
    """One more bridge in front of the same server (a second bridge of the deployment, or a restart)."""
    return bridge_in_front_of(secured.server.target)


async def open_session(base_url: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=HANG_TIMEOUT) as client:
        opened = await client.post("/api/session", json={"apiKey": key})
        assert opened.status_code == 201, opened.text
        return opened.cookies[SESSION_COOKIE]


async def status_with(base_url: str, session: str, path: str = "/api/jobs") -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=HANG_TIMEOUT) as client:
        response = await client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        return response.status_code


async def becomes_401(base_url: str, session: str, within: float = 10.0) -> bool:
    """Whether the session is refused within ``within`` seconds (a bridge may trust a check for 1 s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await status_with(base_url, session) == 401:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_one_users_logins_never_end_another_users_session(start_secured: SecuredFactory) -> None:
    secured = await start_secured()
    alice = await open_session(secured.base_url, secured.keys["alice"])
    bob_first = await open_session(secured.base_url, secured.keys["bob"])
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=secured.base_url, timeout=HANG_TIMEOUT, limits=limits) as client:
        pending = asyncio.Semaphore(16)

        async def login() -> int:
            async with pending:
                response = await client.post("/api/session", json={"apiKey": secured.keys["bob"]})
                return response.status_code

        statuses = await asyncio.gather(*(login() for _ in range(LOGINS)))
    assert set(statuses) == {201}
    assert await status_with(secured.base_url, alice) == 200
    # Bob's own cap ended his oldest session, and only his.
    assert await status_with(secured.base_url, bob_first) == 401


async def test_a_session_works_on_a_second_bridge_and_after_a_bridge_restart(secured: Secured) -> None:
    async with another_bridge(secured) as first:
        session = await open_session(first, secured.keys["alice"])
        assert await status_with(first, session) == 200
        async with another_bridge(secured) as second:
            assert await status_with(second, session) == 200
    async with another_bridge(secured) as restarted:  # every bridge that saw the login is gone
        assert await status_with(restarted, session) == 200
        async with httpx.AsyncClient(base_url=restarted, timeout=HANG_TIMEOUT) as client:
            created = await client.post(
                "/api/jobs",
                json={"brief": {"topic": "Otters"}},
                headers={"Cookie": f"{SESSION_COOKIE}={session}"},
            )
            assert created.status_code == 201, created.text
        job_path = f"/api/jobs/{created.json()['jobId']}"
        assert (await secured.http("alice").get(job_path)).status_code == 200  # alice's job
        assert (await secured.http("bob").get(job_path)).status_code == 404


async def test_revoking_the_key_ends_its_sessions(secured: Secured) -> None:
    session = await open_session(secured.base_url, secured.keys["alice"])
    assert await status_with(secured.base_url, session) == 200
    assert await secured.server.keys.arevoke(secured.key_ids["alice"])
    assert await becomes_401(secured.base_url, session)


async def test_logging_out_ends_the_session_on_every_bridge(secured: Secured) -> None:
    async with another_bridge(secured) as second:
        session = await open_session(secured.base_url, secured.keys["alice"])
        other = await open_session(secured.base_url, secured.keys["alice"])
        assert await status_with(second, session) == 200
        async with httpx.AsyncClient(base_url=secured.base_url, timeout=HANG_TIMEOUT) as client:
            closed = await client.delete("/api/session", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
            assert closed.status_code == 204
        assert await becomes_401(second, session)
        assert await status_with(secured.base_url, session) == 401
        # Logging out ends that browser's session only: alice's other session stays.
        assert await status_with(second, other) == 200


async def test_on_nats_a_session_opened_through_one_api_server_works_and_ends_through_another(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    servers = []
    try:
        for index in range(2):
            settings = Settings(
                data_dir=tmp_path / f"server{index}",
                grpc_listen="127.0.0.1:0",
                store_url=nats_server.url,
                auth_required=True,
                key_recheck_seconds=0.25,
                shutdown_grace_seconds=0.5,
            )
            servers.append(ReelcastServer(settings, host=PluginHost.load(builtins=False)))
            await servers[-1].start()
        _record, key = await servers[0].keys.acreate("alice")
        async with (
            bridge_in_front_of(servers[0].target) as first,
            bridge_in_front_of(servers[1].target) as second,
        ):
            session = await open_session(first, key)
            assert await status_with(second, session) == 200
            async with httpx.AsyncClient(base_url=second, timeout=HANG_TIMEOUT) as client:
                closed = await client.delete(
                    "/api/session", headers={"Cookie": f"{SESSION_COOKIE}={session}"}
                )
                assert closed.status_code == 204
            assert await becomes_401(first, session)
    finally:
        for server in servers:
            await server.stop(grace=0.5)


@pytest.fixture(params=["sqlite", "nats"])
async def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiKeys]:
    if request.param == "sqlite":
        store = KeyStore(tmp_path / "keys.db")
        try:
            yield store
        finally:
            store.close()
        return
    from reelcast.server.storage.nats.keys import NatsKeyStore
    from reelcast.server.storage.nats.layout import NatsConnection

    node: NatsServer = request.getfixturevalue("nats_server")
    connection = NatsConnection([node.url], 1, 3.0)
    await connection.open()
    try:
        yield NatsKeyStore(connection)
    finally:
        await connection.close()


async def test_the_session_store_caps_each_user_alone_on_both_backends(key_store: ApiKeys) -> None:
    alice_key, _ = await key_store.acreate("alice")
    bob_key, _ = await key_store.acreate("bob")
    alice = await key_store.aopen_session(alice_key, ttl_seconds=60, max_per_user=3)
    bobs = [await key_store.aopen_session(bob_key, ttl_seconds=60, max_per_user=3) for _ in range(5)]
    found = await key_store.averify_session(alice)
    assert found is not None and found.user == "alice" and found.key_id == alice_key.id
    assert [await key_store.averify_session(token) is not None for token in bobs] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert await key_store.averify_session(alice) is not None
    # A forged secret for a real session id, and a closed session, are refused.
    assert await key_store.averify_session(alice[:-4] + "AAAA") is None
    assert await key_store.aclose_session(found.id)
    assert await key_store.averify_session(alice) is None
    expired = await key_store.aopen_session(alice_key, ttl_seconds=-1, max_per_user=3)
    assert await key_store.averify_session(expired) is None
