"""Secure defaults: `reelcast serve` creates an admin key on first start and prints a login URL that works;
binding beyond loopback without TLS warns; TLS works for gRPC and HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio

from reelcast.bridge.app import create_app
from reelcast.bridge.server import serve_app
from reelcast.jobs.v1 import job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.processes import ALL_BUILTINS
from tests.security.conftest import bearer

LOGIN_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/login\?key=(rck_\S+)")


def _serve(data_dir: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS}
    env.pop("REELCAST_AUTH", None)  # the default, as an operator gets it
    command = [sys.executable, "-m", "reelcast.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--http-listen", "127.0.0.1:0", *extra]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if re.search(pattern, text):
            return text
        assert process.poll() is None, text
        time.sleep(0.05)
    raise TimeoutError(log.read_text())


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(30)


def test_first_start_prints_a_login_url_that_works_and_later_starts_do_not(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "first.log"
    processes.append(_serve(data_dir, log, "--grpc-listen", "0.0.0.0:0"))
    text = _wait_for(log, r"login\?key=rck_\S+", processes[0])
    assert "warning" in text and "without TLS" in text  # gRPC on 0.0.0.0 without TLS
    found = LOGIN_URL.search(text)
    assert found is not None, text
    base, key = found.groups()
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/api/jobs").status_code == 401
        landed = client.get(f"/login?key={key}", follow_redirects=False)
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        assert client.get("/api/jobs").status_code == 200  # the session cookie
        assert client.get("/login?key=rck_00000000_" + "A" * 43).status_code == 401
    processes[0].terminate()
    assert processes[0].wait(30) == 0
    again = tmp_path / "second.log"
    processes.append(_serve(data_dir, again, "--grpc-listen", "127.0.0.1:0"))
    text = _wait_for(again, r"reelcast web on", processes[1])
    time.sleep(0.3)
    assert "login?key=" not in again.read_text() and "warning" not in again.read_text()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_serves_grpc_and_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    settings = Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        auth_required=True,
        tls_cert_file=cert,
        tls_key_file=key,
    )
    server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
    await server.start()
    _, raw = await server.keys.acreate("alice")
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with aio.secure_channel(server.target, credentials) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            listed = await stub.ListJobs(job_service_pb2.ListJobsRequest(), metadata=bearer(raw))
            assert list(listed.jobs) == []
        async with aio.insecure_channel(server.target) as plain:
            with pytest.raises(aio.AioRpcError) as failure:
                await job_service_pb2_grpc.JobServiceStub(plain).ListJobs(
                    job_service_pb2.ListJobsRequest(), metadata=bearer(raw), timeout=5
                )
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        app = create_app(server.target, auth_required=True, tls_cert_file=cert, tls_key_file=key)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
        port = await asyncio.wait_for(ready, 30)
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{port}",
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=30,
        ) as client:
            assert (
                await client.get("/api/jobs", headers={"Authorization": f"Bearer {raw}"})
            ).status_code == 200
            session = await client.post("/api/session", json={"apiKey": raw})
            assert "Secure" in session.headers["set-cookie"]
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await server.stop(grace=0.5)
