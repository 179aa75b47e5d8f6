"""Progress latency: from a stage's ``report()`` to receipt by SSE clients, pushed (reelcast) versus polled
(the seed's design at 1 s and Aura's 500 ms), in one run. Writes bench/results/latency.json and the
"Progress latency" section of docs/benchmarks.md.

Run: ``python bench/latency.py [--quick]``. ``--quick`` is the CI smoke version (seconds, asserts nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grpc import aio

from bench.harness import ROOT, ServerHandle, run_clients, summary
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

REPORT_INTERVAL = 0.7
SECTION_START = "<!-- latency:start -->"
SECTION_END = "<!-- latency:end -->"


async def create_jobs(grpc_target: str, count: int) -> list[str]:
    async with aio.insecure_channel(grpc_target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        ids = []
        for index in range(count):
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"latency {index}"))
            ids.append((await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job.id)
        return ids


class PollingBridge:
    def __init__(self, grpc_target: str, interval: float) -> None:
        command = [
            sys.executable,
            str(ROOT / "bench" / "polling_bridge.py"),
            "--grpc",
            grpc_target,
            "--interval",
            str(interval),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.http: str = json.loads(self.process.stdout.readline())["http"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(subscribers: int, jobs: int, mode: str, seconds: float, processes: int) -> dict[str, Any]:
    # Reports 0.7 s apart, out of phase with the pollers, so that a poller sees most of them; with faster
    # reports a poller skips some entirely, and its measured latency would only cover the ones it saw.
    ticks = max(3, int(seconds / REPORT_INTERVAL))
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerHandle(Path(scratch) / "data", ticks=ticks, interval=REPORT_INTERVAL, concurrency=jobs)
        polling: PollingBridge | None = None
        try:
            http = server.http
            if mode != "push":
                polling = PollingBridge(server.grpc, 1.0 if mode == "poll-1s" else 0.5)
                http = polling.http
            job_ids = asyncio.run(create_jobs(server.grpc, jobs))
            values = run_clients(http, job_ids, subscribers, processes, seconds + 3)
        finally:
            if polling is not None:
                polling.close()
            server.close()
    return {"subscribers": subscribers, "jobs": jobs, "mode": mode, **summary(values)}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        SECTION_START,
        "## Progress latency",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, Python {platform.python_version()}, "
        "one run, every mode side by side. Latency is from a stage's `report()` to the SSE client "
        "reading the event (wall clock, one machine). Baselines: a bridge that polls `GetJob` every 1 s "
        "(the seed) and every 500 ms (Aura's code) and emits on change.",
        "",
        "| subscribers | jobs | mode | events | mean ms | p50 ms | p99 ms "
        "| poll-1s mean ÷ push p99 (target ≥ 25) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    baseline = {(r["subscribers"], r["jobs"]): r["mean_ms"] for r in rows if r["mode"] == "poll-1s"}
    for r in rows:
        base = baseline.get((r["subscribers"], r["jobs"]))
        ratio = f"{base / r['p99_ms']:.2f}" if base and r["mode"] == "push" else ""
        lines.append(
            f"| {r['subscribers']} | {r['jobs']} | {r['mode']} | {int(r['count'])} | {r['mean_ms']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ratio} |"
        )
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path) -> None:
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION_START in current:
        before, rest = current.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1].lstrip("\n")
        current = before + text + after
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny scale, writes no docs")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        scenarios = [(2, 1)]
        seconds, processes = 3.0, 1
    else:
        scenarios = [(1, 10), (100, 10), (1000, 100)]
        seconds, processes = 8.0, 4
    rows = [
        measure(subscribers, jobs, mode, seconds, processes)
        for subscribers, jobs in scenarios
        for mode in ("push", "poll-1s", "poll-500ms")
    ]
    for row in rows:
        print(json.dumps(row))
        assert row["count"] > 0, f"no event reached the clients in {row}"
    if not args.quick:
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        (results / "latency.json").write_text(json.dumps(rows, indent=2))
        write_section(markdown(rows), args.output)


if __name__ == "__main__":
    main()
