"""API keys: created, listed and revoked with the CLI; stored only as a hash; a revoked key is refused at once
and its open streams (gRPC, SSE with Bearer, SSE with a session cookie) end within 5 s."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio

import reelcast.cli as cli
from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.security.keys import KeyStore
from tests.security.conftest import SecuredFactory, bearer, rpc_code
from tests.stages import PipelinePlugin

KEY = re.compile(r"rck_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def test_keys_create_list_and_revoke_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(tmp_path / "data")
    assert cli.main(["keys", "create", "--user", "carol", "--data-dir", data_dir]) == 0
    raw = KEY.search(capsys.readouterr().out)
    assert raw is not None
    assert cli.main(["keys", "create", "--user", "dave", "--admin", "--data-dir", data_dir]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "list", "--data-dir", data_dir]) == 0
    listed = capsys.readouterr().out
    assert "carol" in listed and "dave" in listed and "admin" in listed and raw.group(0) not in listed
    key_id = raw.group(0).split("_")[1]
    assert cli.main(["keys", "revoke", key_id, "--data-dir", data_dir]) == 0
    assert cli.main(["keys", "revoke", key_id, "--data-dir", data_dir]) == 1
    store = KeyStore(tmp_path / "data" / "reelcast.db")
    try:
        assert store.verify(raw.group(0)) is None
        assert [key.revoked for key in store.list() if key.user == "carol"] == [True]
    finally:
        store.close()


def test_keys_are_random_256_bit_and_verified_only_whole(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    try:
        record, raw = store.create("erin")
        _, other = store.create("erin")
        assert raw != other and KEY.fullmatch(raw)
        assert len(raw.split("_", 2)[2]) == 43  # 32 random bytes, base64url
        assert store.verify(raw) == record
        assert store.verify(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
        assert store.verify(f"rck_{record.id}_" + "A" * 43) is None
    finally:
        store.close()


async def test_the_raw_key_appears_nowhere_in_the_data_dir(start_secured: SecuredFactory) -> None:
    secured = await start_secured()
    job = await secured.create_job("alice")
    await secured.finish("alice", job.id)
    session = await secured.http(None).post("/api/session", json={"apiKey": secured.keys["bob"]})
    assert session.status_code == 201
    token = await secured.http("alice").post(f"/api/jobs/{job.id}/stream-token")
    assert token.status_code == 201
    files = [path for path in secured.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.startswith("reelcast.db") for path in files)
    for user, raw in secured.keys.items():
        secret = raw.split("_", 2)[2].encode()
        for path in files:
            content = path.read_bytes()
            assert raw.encode() not in content and secret not in content, (user, path)
    secret_file = secured.server.settings.stream_token_secret_path
    assert secret_file.stat().st_mode & 0o077 == 0


async def test_a_revoked_key_is_refused_at_once_and_its_streams_close_within_5_s(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured(plugin=PipelinePlugin(hang_at="script"))
    job = await secured.create_job("alice")
    alice = secured.http("alice")
    cookie_client = secured.http(None)
    assert (
        await cookie_client.post("/api/session", json={"apiKey": secured.keys["alice"]})
    ).status_code == 201
    token = (await alice.post(f"/api/jobs/{job.id}/stream-token")).json()["token"]
    watch = secured.stub.WatchJob(
        job_service_pb2.WatchJobRequest(job_id=job.id), metadata=bearer(secured.keys["alice"])
    )
    await watch.read()

    async def read_until_closed(client: httpx.AsyncClient, url: str) -> float:
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            async for _ in response.aiter_bytes():
                pass
        return time.monotonic()

    async def watch_until_closed() -> tuple[float, grpc.StatusCode]:
        try:
            while await watch.read() is not aio.EOF:
                pass
        except aio.AioRpcError as error:
            return time.monotonic(), error.code()
        return time.monotonic(), grpc.StatusCode.OK

    streams = [
        asyncio.create_task(read_until_closed(alice, f"/api/jobs/{job.id}/events")),
        asyncio.create_task(read_until_closed(cookie_client, f"/api/events?jobs={job.id}")),
        asyncio.create_task(
            read_until_closed(secured.http(None), f"/api/jobs/{job.id}/events?token={token}")
        ),
    ]
    grpc_stream = asyncio.create_task(watch_until_closed())
    await asyncio.sleep(1.0)
    assert not any(task.done() for task in [*streams, grpc_stream])

    store = KeyStore(secured.server.settings.database_path)  # a second connection, as `reelcast keys` has
    try:
        assert store.revoke(secured.key_ids["alice"])
    finally:
        store.close()
    revoked_at = time.monotonic()
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.stub.ListJobs(job_service_pb2.ListJobsRequest(), metadata=bearer(secured.keys["alice"]))
    assert rpc_code(failure.value) == (grpc.StatusCode.UNAUTHENTICATED, "E020-UNAUTHENTICATED")
    assert (await alice.get("/api/jobs")).status_code == 401
    assert (await cookie_client.get("/api/jobs")).status_code == 401
    closed = await asyncio.wait_for(asyncio.gather(*streams), 10)
    grpc_closed, code = await asyncio.wait_for(grpc_stream, 10)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert max(*closed, grpc_closed) - revoked_at < 5.0
    # Bob is untouched.
    assert (await secured.http("bob").get("/api/jobs")).status_code == 200
