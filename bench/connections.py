"""Idle SSE connections held by one bridge process at 1k, 5k and 10k, and its memory per connection, beside
a bare Starlette SSE server and nginx + nchan holding the same connections in the same run.

reelcast: ``reelcast bridge`` alone (its own process, so its RSS is the bridge's), in front of
``reelcast serve --no-bridge`` running 100 jobs whose bench stage reports once and then idles; connections
go to those jobs' event streams, spread evenly. The baselines hold plain subscriptions (bench/
broadcast_server.py's ``/sub``, nchan's EventSource ``/sub``). Connections are opened by raw-socket client
processes in steps; after each step every connection must still be open, and the server's VmRSS
(/proc/PID/status) is read. Per connection = (RSS now - RSS before any connection) / connections.

Run alone: ``python -m bench.connections [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import nchan
from bench.harness import (
    ClientFleet,
    bridge,
    create_jobs,
    pyplot,
    raise_nofile,
    rss_kib,
    save_figure,
    section_main,
    serve,
    stdin_held_server,
)

SERVERS = ("reelcast", "starlette", "nchan")
LABELS = {
    "reelcast": "reelcast bridge",
    "starlette": "bare Starlette SSE",
    "nchan": "nginx + nchan (worker)",
}
FULL_STEPS = (1000, 5000, 10000)
QUICK_STEPS = (20, 50)
JOBS = 100
TARGET_KIB = 40


@contextmanager
def reelcast_server(scratch: Path, jobs: int) -> Iterator[tuple[str, list[str], int]]:
    gate = scratch / "gate"
    gate.mkdir()
    api = serve(scratch / "data", "idle", gate=gate, concurrency=jobs, bridge=False)
    front = None
    try:
        job_ids = asyncio.run(create_jobs(api.grpc, jobs))
        front = bridge(api.grpc, scratch / "bridge.log")
        yield front.http, [f"/api/jobs/{job_id}/events" for job_id in job_ids], front.pid
    finally:
        (gate / "stop").touch()
        if front is not None:
            front.close()
        api.close()


@contextmanager
def starlette_server(scratch: Path, jobs: int) -> Iterator[tuple[str, list[str], int]]:
    with stdin_held_server("bench.broadcast_server") as info:
        yield info["http"], ["/sub"], info["pid"]


@contextmanager
def nchan_server(scratch: Path, jobs: int) -> Iterator[tuple[str, list[str], int]]:
    server = nchan.NchanServer()
    try:
        yield server.http, ["/sub"], server.worker
    finally:
        server.close()


STARTERS: dict[str, Callable[[Path, int], Any]] = {
    "reelcast": reelcast_server,
    "starlette": starlette_server,
    "nchan": nchan_server,
}


def measure(name: str, steps: tuple[int, ...], processes: int, jobs: int, settle: float) -> dict[str, Any]:
    scratch = tempfile.TemporaryDirectory(prefix=f"reelcast-bench-connections-{name}-")
    with scratch, STARTERS[name](Path(scratch.name), jobs) as (http, paths, pid):
        time.sleep(0.5)
        before = rss_kib(pid)
        fleets: list[ClientFleet] = []
        rows = []
        try:
            held = 0
            for target in steps:
                fleet = ClientFleet(http, paths, target - held, processes)
                fleets.append(fleet)
                held = target
                time.sleep(1.0)  # let the server settle (buffers, the bridge's upstream feeds)
                still_open = sum(f.open_connections() for f in fleets)
                failed = sum(f.failed for f in fleets)
                rss = rss_kib(pid)
                rows.append(
                    {
                        "connections": target,
                        "open": still_open,
                        "failed": failed,
                        "rss_kib": rss,
                        "per_connection_kib": (rss - before) / target,
                    }
                )
                print(json.dumps({"server": name, **rows[-1]}), file=sys.stderr, flush=True)
        finally:
            for fleet in fleets:
                fleet.close()
    return {"server": name, "rss_before_kib": before, "steps": rows}


def run(quick: bool = False) -> dict[str, Any]:
    limit = raise_nofile()
    steps = QUICK_STEPS if quick else FULL_STEPS
    processes = 2 if quick else 4
    jobs = 4 if quick else JOBS
    servers = [s for s in SERVERS if s != "nchan" or nchan.available()]
    if not quick and "nchan" not in servers:
        raise RuntimeError("nginx with nchan is not installed: run `make bench-deps`")
    settle = 0.2 if quick else 1.0
    results = [measure(name, steps, processes, jobs, settle) for name in servers]
    for result in results:
        for row in result["steps"]:
            if row["open"] != row["connections"] or row["failed"]:
                raise RuntimeError(f"{result['server']} did not hold every connection: {row}")
    return {"nofile": limit, "jobs": jobs, "steps": list(steps), "servers": results}


def _per_connection(results: dict[str, Any], name: str) -> dict[int, float]:
    for result in results["servers"]:
        if result["server"] == name:
            return {row["connections"]: row["per_connection_kib"] for row in result["steps"]}
    return {}


def summary(results: dict[str, Any]) -> dict[str, float]:
    largest = max(results["steps"])
    return {
        f"{result['server']}_kib_per_connection_at_{largest}": _per_connection(results, result["server"])[
            largest
        ]
        for result in results["servers"]
    }


def section(results: dict[str, Any], plot_path: str) -> str:
    lines = [
        "## Idle connections",
        "",
        f"Idle SSE connections held by one server process, opened in steps by raw-socket client processes; "
        f"after each step every connection is checked to be still open. reelcast: `reelcast bridge` alone "
        f"in front of `reelcast serve --no-bridge` with {results['jobs']} running, idle jobs, connections "
        "spread over their event streams. Memory is the process's VmRSS; per connection is (RSS - RSS before "
        f"the first connection) ÷ connections. Open-files limit: {results['nofile']} (soft raised to hard).",
        "",
        "| server | connections | all open | RSS MiB | KiB per connection | reelcast KiB ÷ this |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    reelcast = _per_connection(results, "reelcast")
    for result in results["servers"]:
        for row in result["steps"]:
            ratio = ""
            if result["server"] != "reelcast" and row["per_connection_kib"] > 0:
                ratio = f"{reelcast[row['connections']] / row['per_connection_kib']:.1f}"
            lines.append(
                f"| {LABELS[result['server']]} | {row['connections']:,} "
                f"| {'yes' if row['open'] == row['connections'] else 'no'} | {row['rss_kib'] / 1024:.1f} "
                f"| {row['per_connection_kib']:.1f} | {ratio} |"
            )
    lines += ["", f"![Idle connections]({plot_path})", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    figure, axes = plt.subplots(figsize=(7, 3.5))
    colors = {"reelcast": "#d62728", "starlette": "#1f77b4", "nchan": "#7f7f7f"}
    for result in results["servers"]:
        xs = [row["connections"] for row in result["steps"]]
        ys = [row["per_connection_kib"] for row in result["steps"]]
        axes.plot(xs, ys, marker="o", label=LABELS[result["server"]], color=colors[result["server"]])
    axes.axhline(
        TARGET_KIB, linestyle="--", color="#2ca02c", label=f"target: {TARGET_KIB} KiB per connection"
    )
    axes.set_xlabel("idle SSE connections held")
    axes.set_ylabel("RSS growth per connection (KiB)")
    axes.set_title("Memory per idle SSE connection, one server process")
    axes.legend(fontsize=8)
    save_figure(figure, path)


def main() -> None:
    section_main(__doc__ or "", run, summary)


if __name__ == "__main__":
    main()
