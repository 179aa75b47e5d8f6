"""API keys on NATS: a key created once with ``reelcast keys --store nats://…`` works on every API server of
the deployment, a stream token minted by one server opens streams on another, and a revocation made once is
refused by all of them."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc import aio

from reelcast.jobs.metadata import STREAM_TOKEN_HEADER
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer, free_port
from tests.nats.processes import ReelcastProcess, server
from tests.processes import ALL_BUILTINS


def keys_command(tmp_path: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reelcast.cli", "keys", *args, "--store", store]
    command += ["--data-dir", str(tmp_path / "cli")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def create_job(process: ReelcastProcess, key: str | None) -> job_pb2.Job:
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    async with aio.insecure_channel(process.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="keys")))
        return (await stub.CreateJob(request, metadata=metadata, timeout=30)).job


async def stream_token(process: ReelcastProcess, key: str, job_id: str) -> str:
    metadata = (("authorization", f"Bearer {key}"), (STREAM_TOKEN_HEADER, "request"))
    async with aio.insecure_channel(process.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        call = stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), metadata=metadata, timeout=30)
        await call
        trailing = dict(await call.trailing_metadata() or ())
        return str(trailing[STREAM_TOKEN_HEADER])


async def first_event(process: ReelcastProcess, token: str, job_id: str) -> job_pb2.JobProgress:
    async with aio.insecure_channel(process.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.WatchJobRequest(job_id=job_id)
        metadata = (("authorization", f"StreamToken {token}"),)
        async for event in stub.WatchJob(request, metadata=metadata, timeout=30):
            return event
    raise AssertionError("the stream ended without an event")


async def test_a_key_made_once_works_on_every_api_server_until_revoked_once(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_AUTH": "required",
    }
    created = keys_command(tmp_path, nats_server.url, "create", "--user", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = re.search(r"created key (\w+) for alice", created.stderr)
    assert key_id is not None, created.stderr

    servers = [server(tmp_path, f"server{index}", nats_server.url, env) for index in range(2)]
    try:
        for process in servers:  # one after the other: the first start makes the one admin key
            await asyncio.to_thread(process.start)
        jobs = [await create_job(process, key) for process in servers]
        assert [job.owner for job in jobs] == ["alice", "alice"]
        # A stream token minted by one server opens the job's stream on the other (one shared secret).
        token = await stream_token(servers[0], key, jobs[0].id)
        first = await first_event(servers[1], token, jobs[0].id)
        assert (first.job_id, first.sequence) == (jobs[0].id, 1)

        # Each server made no admin key of its own beyond the first start's one, and the CLI lists them all.
        listed = keys_command(tmp_path, nats_server.url, "list")
        assert listed.returncode == 0, listed.stderr
        assert re.search(rf"^{key_id.group(1)}  alice\s*$", listed.stdout, re.MULTILINE), listed.stdout
        assert len(re.findall(r"admin$", listed.stdout, re.MULTILINE)) == 1, listed.stdout

        revoked = keys_command(tmp_path, nats_server.url, "revoke", key_id.group(1))
        assert revoked.returncode == 0, revoked.stderr
        for process in servers:
            with pytest.raises(aio.AioRpcError) as refused:
                await create_job(process, key)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = keys_command(tmp_path, nats_server.url, "list")
        assert re.search(rf"^{key_id.group(1)}  alice\s+revoked$", listed.stdout, re.MULTILINE), listed.stdout
        again = keys_command(tmp_path, nats_server.url, "revoke", key_id.group(1))
        assert again.returncode == 1
    finally:
        for process in servers:
            process.stop()


def test_keys_against_unreachable_nats_end_with_a_clear_error(tmp_path: Path) -> None:
    nobody = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    result = keys_command(tmp_path, nobody, "list")
    assert result.returncode == 1
    assert f"error: cannot reach NATS at {nobody} within" in result.stderr
    assert "remediation: start nats-server there, or check --store / REELCAST_STORE" in result.stderr
    assert "Traceback" not in result.stderr
