"""``--announce json`` of a distributed deployment's processes (docs/operations.md#announcements): a
``server``, a ``worker`` with metrics and a ``bridge`` each announce ready with the addresses they serve,
which answer, and nulls for those they do not, then stopped after a clean stop."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.launcher import announcements
from tests.nats.natsproc import NatsServer
from tests.nats.processes import bridge, server, worker
from tests.test_announce import HANG_TIMEOUT, grpc_serving


def test_server_worker_and_bridge_announce_what_they_serve(tmp_path: Path, nats_server: NatsServer) -> None:
    api = server(tmp_path, "api", nats_server.url, {})
    runner = worker(tmp_path, "worker", nats_server.url, {}, concurrency=2)
    runner.args += ["--metrics-listen", "127.0.0.1:0"]
    front = bridge(tmp_path, "bridge", "", {})
    processes = [api, runner, front]
    try:
        api.start()
        assert api.ready is not None and api.process is not None
        assert api.ready.fields["kind"] == "server" and api.ready.pid == api.process.pid
        assert api.ready.fields["http"] is None and api.ready.fields["metrics"] is None
        assert grpc_serving(api.target)

        runner.start()
        assert runner.ready is not None
        fields = runner.ready.fields
        assert fields["kind"] == "worker" and fields["grpc"] is None and fields["http"] is None
        assert fields["slots"] == 2 and fields["dataDir"] == str(tmp_path / "worker")
        assert str(fields["worker"]).endswith(f"-{runner.ready.pid}") and runner.address == fields["worker"]

        front.args[front.args.index("--grpc-target") + 1] = api.target
        front.start()
        assert front.ready is not None
        assert front.ready.fields["kind"] == "bridge" and front.ready.fields["grpcTarget"] == api.target
        assert front.ready.fields["grpc"] is None and front.address == front.http_base
        with httpx.Client(timeout=HANG_TIMEOUT) as client:
            assert client.get(runner.metrics_url).status_code == 200
            health = client.get(f"{front.http_base}/healthz")
            assert health.status_code == 200 and health.json()["grpcTarget"] == api.target

        for process in reversed(processes):
            assert process.ready is not None
            assert process.terminate() == 0, process.log()
            stopped = announcements(process.log())[-1]
            assert (stopped.event, stopped.pid, stopped.fields["exitCode"]) == (
                "stopped",
                process.ready.pid,
                0,
            )
    finally:
        for process in processes:
            process.kill()
