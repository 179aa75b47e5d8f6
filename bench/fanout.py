"""Fan-out throughput: SSE events per second delivered to 1,000 subscribers of one job, five servers side by
side in each round of one run:

1. reelcast, the whole path: ``reelcast serve`` (gRPC server, runner and bridge in one process, as shipped)
   with the bench plugin's ``burst`` stage, which reports as fast as the server takes its reports
   (``REELCAST_PROGRESS_INTERVAL=0``, so the recorder coalesces nothing); every report goes through the
   store, gRPC ``WatchJob`` to the bridge, its projection and framing, to every subscriber.
2. nginx + nchan, one worker, fed the same payloads by a pipelining publisher (bench/nchan.py).
3. a bare Starlette broadcast of pre-framed bytes (bench/broadcast_server.py): the ceiling on this stack.
4. and 5. ``reelcast bridge`` in its own process, then with ``--processes 2`` (bridge/processes.py),
   in front of ``reelcast serve --no-bridge``: what a second bridge process adds to the fan-out.

Subscribers are raw-socket client processes (bench/frame_clients.py) counting the frames that arrive in a
measuring window after a warm-up; frames the bridge coalesced for a slow subscriber are not counted, since
they were never delivered. Also reported: distinct events published in the window, the server's CPU, and
the busiest client process's CPU (which shows the clients are not the bottleneck).

Run alone: ``python -m bench.fanout [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc import aio

from bench import nchan
from bench.harness import (
    ClientFleet,
    bridge,
    create_jobs,
    pyplot,
    sample_cpu,
    save_figure,
    section_main,
    serve,
    stdin_held_server,
)
from bench.payloads import data_payloads
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

SERVERS = ("reelcast", "bridge-1", "bridge-2", "nchan", "starlette")
LABELS = {
    "reelcast": "reelcast (whole path)",
    "bridge-1": "reelcast, `reelcast bridge` alone",
    "bridge-2": "reelcast, `reelcast bridge --processes 2`",
    "nchan": "nginx + nchan",
    "starlette": "bare Starlette broadcast",
}
COLORS = {
    "reelcast": "#d62728",
    "bridge-1": "#ff9896",
    "bridge-2": "#9467bd",
    "nchan": "#7f7f7f",
    "starlette": "#1f77b4",
}
# The bridge's own processes against ``serve --no-bridge``: None is the bridge inside ``reelcast serve``.
BRIDGE_PROCESSES: dict[str, int | None] = {"reelcast": None, "bridge-1": 1, "bridge-2": 2}


@dataclass
class Scale:
    subscribers: int
    client_processes: int
    warmup: float
    seconds: float
    rounds: int


FULL = Scale(subscribers=1000, client_processes=4, warmup=1.0, seconds=3.0, rounds=3)
QUICK = Scale(subscribers=20, client_processes=2, warmup=0.3, seconds=0.7, rounds=1)


def _window(scale: Scale) -> tuple[float, float]:
    """The measuring window, from now: warm-up first, so that every server is in its steady state."""
    start = time.time() + scale.warmup
    return start, start + scale.seconds


def _result(
    server: str, scale: Scale, clients: dict[str, float], published: int, server_cpu: float, ready: int
) -> dict[str, Any]:
    frames = clients["frames"]
    return {
        "server": server,
        "subscribers": scale.subscribers,
        "connected": ready,
        "frames": frames,
        "frames_per_s": frames / scale.seconds,
        "published": published,
        "published_per_s": published / scale.seconds,
        # Of the frames offered (events published x subscribers), the share delivered in the window.
        "delivered_share": frames / (published * ready) if published and ready else 0.0,
        "server_cpu": server_cpu,
        "client_cpu_max": clients["cpu_max"],
        "client_cpu_total": clients["cpu_total"],
    }


async def _published_between(grpc_target: str, job_id: str, start: float, end: float) -> int:
    """Step-progress events the server recorded between ``start`` and ``end`` (their ``time`` field)."""
    count = 0
    async with aio.insecure_channel(grpc_target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), timeout=120):
            stamp = event.time.seconds + event.time.nanos / 1e9
            if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and start <= stamp < end:
                count += 1
    return count


def run_reelcast(scale: Scale, scratch: Path, name: str = "reelcast") -> dict[str, Any]:
    processes = BRIDGE_PROCESSES[name]
    gate_dir = scratch / "gate"
    gate_dir.mkdir()
    server = serve(scratch / "data", "burst", gate=gate_dir, concurrency=4, bridge=processes is None)
    front = bridge(server.grpc, scratch / "bridge.log", processes) if processes is not None else server
    try:
        job_id = asyncio.run(create_jobs(server.grpc, 1))[0]
        paths = [f"/api/jobs/{job_id}/events"]
        fleet = ClientFleet(front.http, paths, scale.subscribers, scale.client_processes)
        if fleet.failed:
            fleet.close()
            log = server.log_path.read_text()[-3000:]
            raise RuntimeError(f"{fleet.failed} subscribers refused (statuses {fleet.statuses}):\n{log}")
        try:
            start, end = _window(scale)
            (gate_dir / "go").touch()
            fleet.start_window(start, end)
            pids = sorted({server.pid, *front.bridge_pids})
            server_cpu = asyncio.run(sample_cpu(pids, start, end))
            clients = fleet.results()
        finally:
            (gate_dir / "stop").touch()
            fleet.close()
        published = asyncio.run(_published_between(server.grpc, job_id, start, end))
    finally:
        if front is not server:
            front.close()
        server.close()
    return _result(name, scale, clients, published, server_cpu, fleet.ready)


def run_nchan(scale: Scale, scratch: Path) -> dict[str, Any]:
    server = nchan.NchanServer()
    try:
        fleet = ClientFleet(server.http, ["/sub"], scale.subscribers, scale.client_processes)
        try:
            start, end = _window(scale)
            fleet.start_window(start, end)

            async def publish_and_sample() -> tuple[dict[str, int], float]:
                return await asyncio.gather(
                    nchan.publish(server.http, data_payloads(1000), start, end),
                    sample_cpu([server.worker], start, end),
                )

            counts, server_cpu = asyncio.run(publish_and_sample())
            clients = fleet.results()
        finally:
            fleet.close()
    finally:
        server.close()
    if counts["refused"]:
        raise RuntimeError(f"nchan refused {counts['refused']} publishes")
    return _result("nchan", scale, clients, counts["published"], server_cpu, fleet.ready)


def run_starlette(scale: Scale, scratch: Path) -> dict[str, Any]:
    with stdin_held_server("bench.broadcast_server") as info:
        http, pid = info["http"], info["pid"]
        fleet = ClientFleet(http, ["/sub"], scale.subscribers, scale.client_processes)
        try:
            start, end = _window(scale)
            fleet.start_window(start, end)
            request = urllib.request.Request(f"http://{http}/publish?start={start}&end={end}", method="POST")
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
            server_cpu = asyncio.run(sample_cpu([pid], start, end))
            clients = fleet.results()
            with urllib.request.urlopen(f"http://{http}/stats", timeout=30) as answer:
                published = json.loads(answer.read())["published"]
        finally:
            fleet.close()
    return _result("starlette", scale, clients, published, server_cpu, fleet.ready)


RUNNERS: dict[str, Callable[[Scale, Path], dict[str, Any]]] = {
    "reelcast": run_reelcast,
    "bridge-1": functools.partial(run_reelcast, name="bridge-1"),
    "bridge-2": functools.partial(run_reelcast, name="bridge-2"),
    "nchan": run_nchan,
    "starlette": run_starlette,
}


def run(quick: bool = False) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    servers = [s for s in SERVERS if s != "nchan" or nchan.available()]
    if not quick and "nchan" not in servers:
        raise RuntimeError("nginx with nchan is not installed: run `make bench-deps`")
    runs: list[dict[str, Any]] = []
    for round_index in range(scale.rounds):
        # Each round runs every server once, in a rotated order, so that drifting noise spreads evenly.
        order = servers[round_index % len(servers) :] + servers[: round_index % len(servers)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix=f"reelcast-bench-fanout-{name}-") as scratch:
                result = RUNNERS[name](scale, Path(scratch))
            result["round"] = round_index
            print(json.dumps(result), file=sys.stderr, flush=True)
            runs.append(result)
    for result in runs:
        if result["connected"] != scale.subscribers or result["frames"] <= 0:
            raise RuntimeError(f"fan-out run delivered nothing or lost subscribers: {result}")
    return {
        "scale": scale.__dict__,
        "servers": servers,
        "nchan": f"nginx {nchan.nginx_version()}, libnginx-mod-nchan {nchan.nchan_version()}"
        if "nchan" in servers
        else "not installed",
        "runs": runs,
    }


def _by_server(results: dict[str, Any], key: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {name: [] for name in results["servers"]}
    for result in results["runs"]:
        values[result["server"]].append(result[key])
    return values


def _ratios(results: dict[str, Any], baseline: str, server: str = "reelcast") -> list[float]:
    """``server`` ÷ ``baseline``, round by round (each pair ran side by side)."""
    per_round: dict[int, dict[str, float]] = {}
    for result in results["runs"]:
        per_round.setdefault(result["round"], {})[result["server"]] = result["frames_per_s"]
    return [r[server] / r[baseline] for r in per_round.values() if r.get(baseline) and server in r]


def summary(results: dict[str, Any]) -> dict[str, float]:
    rates = _by_server(results, "frames_per_s")
    out = {f"{name}_median": statistics.median(values) for name, values in rates.items()}
    for baseline in ("nchan", "starlette"):
        ratios = _ratios(results, baseline)
        if ratios:
            out[f"vs_{baseline}_median"] = statistics.median(ratios)
    processes = _ratios(results, "bridge-1", server="bridge-2")
    if processes:
        out["bridge_2_vs_1_median"] = statistics.median(processes)
    return out


def section(results: dict[str, Any], plot_path: str) -> str:
    scale = results["scale"]
    rates = _by_server(results, "frames_per_s")
    lines = [
        "## Fan-out throughput",
        "",
        f"SSE frames delivered per second to {scale['subscribers']} subscribers of one job, counted by "
        f"{scale['client_processes']} raw-socket client processes in a {scale['seconds']:.0f} s window "
        f"after a {scale['warmup']:.0f} s warm-up; {scale['rounds']} rounds, each running every "
        "server side by side in rotated order. Baselines: "
        f"{results['nchan']} (one worker, publisher pipelining 32 POSTs on each of 4 connections), and a "
        "bare Starlette broadcast of pre-framed bytes (uvicorn, uvloop, httptools; each subscriber's "
        "pending frames in one write), the ceiling on this stack. Every server carries the same payloads, "
        "projected by the bridge's own code.",
        "",
        "| server | frames/s median | frames/s min–max | events published/s | delivered share "
        "| server CPU | busiest client CPU | reelcast ÷ this |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in results["servers"]:
        mine = [r for r in results["runs"] if r["server"] == name]
        ratios = _ratios(results, name) if name != "reelcast" else []
        ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        lines.append(
            f"| {LABELS[name]} | {statistics.median(rates[name]):,.0f} | {min(rates[name]):,.0f}–"
            f"{max(rates[name]):,.0f} | {statistics.median(r['published_per_s'] for r in mine):,.0f} "
            f"| {statistics.median(r['delivered_share'] for r in mine):.2f} "
            f"| {statistics.median(r['server_cpu'] for r in mine):.0%} "
            f"| {max(r['client_cpu_max'] for r in mine):.0%} | {ratio} |"
        )
    processes = _ratios(results, "bridge-1", server="bridge-2")
    if processes:
        lines += [
            "",
            f"Two bridge processes ÷ one (both `reelcast bridge` in front of `reelcast serve --no-bridge`, "
            f"side by side in each round): **{statistics.median(processes):.2f}×** median "
            f"({min(processes):.2f}–{max(processes):.2f}). Server CPU there counts the API server and every "
            "bridge process.",
        ]
    lines += [
        "",
        "*frames/s* counts frames that reached a client; *delivered share* is frames ÷ (events published × "
        "subscribers): below 1 where the bridge coalesced progress ticks for subscribers that fell behind "
        "(they get the latest state instead of every tick), or where events were still queued at the "
        "window's end. CPU is a share of one core over the window (the machine has two, shared by server "
        "and clients). *reelcast ÷ this* is the median over rounds of the per-round ratio.",
        "",
        f"![Fan-out throughput]({plot_path})",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    rates = _by_server(results, "frames_per_s")
    names = results["servers"]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    medians = [statistics.median(rates[n]) / 1000 for n in names]
    axes.bar([LABELS[n] for n in names], medians, color=[COLORS[n] for n in names])
    for index, name in enumerate(names):
        dots = [v / 1000 for v in rates[name]]
        axes.scatter([index] * len(dots), dots, color="black", s=10, zorder=3)
    axes.axhline(100, linestyle="--", color="#2ca02c", label="target: 100k frames/s")
    axes.set_ylabel("thousand frames/s delivered")
    subscribers = results["scale"]["subscribers"]
    axes.set_title(f"Fan-out to {subscribers} SSE subscribers (bars: median; dots: rounds)")
    axes.legend(loc="upper left", fontsize=8)
    save_figure(figure, path)


def main() -> None:
    section_main(__doc__ or "", run, summary)


if __name__ == "__main__":
    main()
