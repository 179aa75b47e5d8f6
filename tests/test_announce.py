"""``--announce json`` (docs/operations.md#announcements): ``reelcast serve`` writes one JSON object on stdout
when it is ready, whose addresses answer (gRPC health, the bridge's /healthz, /metrics, the first start's
login URL), then one when it has stopped, and nothing else; a restart announces anew, under its own pid.
Without the flag, stdout keeps the lines written for people. Server, worker and bridge: tests/nats."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.launcher import announcements
from tests.processes import ALL_BUILTINS, ServerProcess

HANG_TIMEOUT = 60.0


def grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs declare no methods on HealthStub
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=HANG_TIMEOUT)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def stdout_objects(process: ServerProcess) -> list[dict[str, object]]:
    """Every line of the process's stdout, each parsed as JSON (or this raises)."""
    return [json.loads(line) for line in process.log_path.read_text().splitlines()]


def test_serve_announces_ready_with_addresses_that_answer_then_stopped_and_a_restart_anew(
    tmp_path: Path,
) -> None:
    env = {"REELCAST_DISABLED_PLUGINS": ALL_BUILTINS, "REELCAST_AUTH": "required"}
    process = ServerProcess(tmp_path / "data", env, bridge=True, metrics=True, separate_stderr=True)
    try:
        process.start()
        assert process.ready is not None and process.process is not None
        ready = process.ready.fields
        assert ready["announce"] == 1 and ready["event"] == "ready" and ready["kind"] == "serve"
        assert ready["pid"] == process.process.pid
        assert ready["tls"] is False and ready["dataDir"] == str(tmp_path / "data")
        assert grpc_serving(str(ready["grpc"]))
        with httpx.Client(timeout=HANG_TIMEOUT) as client:
            assert client.get(f"{ready['http']}/healthz").status_code == 200
            metrics = client.get(str(ready["metrics"]))
            assert metrics.status_code == 200 and "reelcast_jobs" in metrics.text
            # The first start's admin key, and the login URL that carries it.
            assert str(ready["adminKey"]).startswith("rck_")
            assert ready["loginUrl"] == f"{ready['http']}/login?key={ready['adminKey']}"
            landed = client.get(str(ready["loginUrl"]), follow_redirects=False)
            assert landed.status_code == 303 and landed.headers["location"] == "/"
        assert process.terminate() == 0
        first = stdout_objects(process)
        assert [line["event"] for line in first] == ["ready", "stopped"], first
        assert first[0] == ready
        assert first[1] == {
            "announce": 1,
            "event": "stopped",
            "kind": "serve",
            "pid": ready["pid"],
            "exitCode": 0,
        }

        # The same process class again, appending to the same stdout file: its own event, its own pid.
        process.start()
        assert process.ready is not None and process.process is not None
        again = process.ready.fields
        assert again["pid"] == process.process.pid != ready["pid"]
        assert "adminKey" not in again and "loginUrl" not in again
        assert grpc_serving(process.target)
        assert [each.event for each in announcements(process.log_path.read_text())] == [
            "ready",
            "stopped",
            "ready",
        ]
    finally:
        process.stop()


def test_serve_without_a_bridge_is_ready_with_grpc_alone(tmp_path: Path) -> None:
    process = ServerProcess(
        tmp_path / "data", {"REELCAST_DISABLED_PLUGINS": ALL_BUILTINS}, separate_stderr=True
    )
    try:
        process.start()
        assert process.ready is not None
        assert process.ready.fields["http"] is None and process.ready.fields["metrics"] is None
        assert grpc_serving(process.target)
    finally:
        process.stop()


def test_without_the_flag_stdout_keeps_the_lines_for_people(tmp_path: Path) -> None:
    stdout = tmp_path / "stdout"
    command = [sys.executable, "-m", "reelcast.cli", "serve", "--data-dir", str(tmp_path / "data")]
    command += ["--grpc-listen", "127.0.0.1:0", "--no-bridge", "--metrics-listen", "127.0.0.1:0"]
    with stdout.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + HANG_TIMEOUT
        while len(stdout.read_text().splitlines()) < 2:
            assert process.poll() is None and time.monotonic() < deadline, stdout.read_text()
            time.sleep(0.05)
    finally:
        process.terminate()
        assert process.wait(HANG_TIMEOUT) == 0
    grpc_line, metrics_line = stdout.read_text().splitlines()
    assert grpc_line.startswith("reelcast gRPC on 127.0.0.1:") and grpc_line.endswith(
        f"(data dir {tmp_path / 'data'})"
    )
    assert metrics_line.startswith("reelcast metrics on http://127.0.0.1:") and metrics_line.endswith(
        "/metrics"
    )


def test_a_wildcard_listen_is_announced_as_the_loopback_address_a_local_client_dials(tmp_path: Path) -> None:
    wildcard = ["--grpc-listen", "0.0.0.0:0", "--http-listen", "0.0.0.0:0"]
    env = {"REELCAST_DISABLED_PLUGINS": ALL_BUILTINS}
    process = ServerProcess(tmp_path / "data", env, bridge=True, separate_stderr=True, args=wildcard)
    try:
        process.start()
        assert process.target.startswith("127.0.0.1:") and process.http_base.startswith("http://127.0.0.1:")
        assert grpc_serving(process.target)
        assert httpx.get(f"{process.http_base}/healthz", timeout=HANG_TIMEOUT).status_code == 200
    finally:
        process.stop()
