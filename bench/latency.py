"""Progress latency: from a stage's ``report()`` to receipt by SSE clients, pushed (reelcast) versus polled
(the seed's design at 1 s and Aura's 500 ms), in one run (its section of docs/benchmarks.md).

Run alone: ``python -m bench.latency [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import ROOT, ServerHandle, create_jobs, pyplot, run_clients, save_figure, section_main
from bench.harness import summary as latency_summary

REPORT_INTERVAL = 0.7


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


def measure(
    subscribers: int, jobs: int, mode: str, seconds: float, processes: int, phase: str = "random"
) -> dict[str, Any]:
    # Reports 0.7 s apart, out of phase with the pollers, so that a poller sees most of them; with faster
    # reports a poller skips some entirely, and its measured latency would only cover the ones it saw.
    ticks = max(3, int(seconds / REPORT_INTERVAL))
    with tempfile.TemporaryDirectory() as scratch:
        gate = Path(scratch) / "gate"
        gate.mkdir()
        server = ServerHandle(
            Path(scratch) / "data",
            ticks=ticks,
            interval=REPORT_INTERVAL,
            concurrency=jobs,
            gate=gate,
            phase=phase,
        )
        polling: PollingBridge | None = None
        try:
            http = server.http
            if mode != "push":
                polling = PollingBridge(server.grpc, 1.0 if mode == "poll-1s" else 0.5)
                http = polling.http
            job_ids = asyncio.run(create_jobs(server.grpc, jobs))
            values, connect_seconds = run_clients(http, job_ids, subscribers, processes, seconds + 60, gate)
        finally:
            if polling is not None:
                polling.close()
            server.close()
    return {
        "subscribers": subscribers,
        "jobs": jobs,
        "mode": mode,
        "phase": phase,
        "connect_ms": connect_seconds * 1000,
        **latency_summary(values),
    }


def run(quick: bool = False) -> dict[str, Any]:
    if quick:
        scenarios = [(2, 1)]
        seconds, processes = 1.5, 1
    else:
        scenarios = [(1, 10), (100, 10), (1000, 100)]
        seconds, processes = 8.0, 4
    rows = []
    for subscribers, jobs in scenarios:
        for mode in ("push", "poll-1s", "poll-500ms"):
            rows.append(measure(subscribers, jobs, mode, seconds, processes))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    # The worst case beside the model: every job reports in the same instant, a burst of events at once.
    subscribers, jobs = scenarios[-1]
    rows.append(measure(subscribers, jobs, "push", seconds, processes, phase="same"))
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for row in rows:
        if row["count"] <= 0:
            raise RuntimeError(f"no event reached the clients in {row}")
    return {"seconds": seconds, "report_interval": REPORT_INTERVAL, "rows": rows}


def _ratio(results: dict[str, Any], row: dict[str, Any]) -> float | None:
    for other in results["rows"]:
        if (other["subscribers"], other["jobs"], other["mode"]) == (
            row["subscribers"],
            row["jobs"],
            "poll-1s",
        ):
            return float(other["mean_ms"]) / float(row["p99_ms"])
    return None


def _lockstep(row: dict[str, Any]) -> bool:
    return row.get("phase") == "same"


def _label(row: dict[str, Any]) -> str:
    return f"{row['mode']}, every job at once" if _lockstep(row) else str(row["mode"])


def summary(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for row in results["rows"]:
        if row["mode"] == "push":
            suffix = " (every job at once)" if _lockstep(row) else ""
            out[f"push p99 ms at {row['subscribers']} subscribers{suffix}"] = row["p99_ms"]
            ratio = _ratio(results, row)
            if ratio is not None:
                out[f"poll-1s mean / push p99 at {row['subscribers']}{suffix}"] = ratio
    return out


def section(results: dict[str, Any], plot_path: str) -> str:
    lines = [
        "## Progress latency",
        "",
        "From a stage's `report()` to the SSE client reading the event (wall clock, one machine), over "
        f"{results['seconds']:.0f} s per row with reports {results['report_interval']} s apart in every "
        "running job; every mode side by side in this run. Baselines: a bridge written in the bench the way "
        "the seed describes it, polling `GetJob` every 1 s (the seed) and every 500 ms (Aura's code) and "
        "emitting on change. Events are pooled over all subscribers for p50 and p99. The jobs are running "
        "when the subscribers connect; their stages start reporting once every subscriber has its first "
        "frame, each job at its own random phase within the interval, as independent jobs do. So latency is "
        "measured with all subscribers attached, and the connect storm is its own column: the time from "
        "starting the client processes until every subscriber had its first frame.",
        "",
        "| subscribers | jobs | mode | connect ms | events | mean ms | p50 ms | p99 ms "
        "| poll-1s mean ÷ push p99 (target ≥ 25) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        ratio = _ratio(results, r) if r["mode"] == "push" else None
        lines.append(
            f"| {r['subscribers']} | {r['jobs']} | {_label(r)} | {r.get('connect_ms', float('nan')):.0f} "
            f"| {int(r['count'])} | {r['mean_ms']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {f'{ratio:.2f}' if ratio is not None else ''} |"
        )
    lines += [
        "",
        "A poller emits only the states it sees, so at high load its event count drops below the pushed "
        "one: it skips intermediate reports rather than queueing them. The last row is the worst case beside "
        "the model: every job reports in the same instant (within the stage's 10 ms start poll), so each "
        "tick is a burst of one event per job that the server stores and fans out one after another.",
        "",
        f"![Progress latency]({plot_path})",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    modes = ("push", "poll-1s", "poll-500ms")
    colors = {"push": "#d62728", "poll-1s": "#7f7f7f", "poll-500ms": "#1f77b4"}
    scenarios = sorted({(r["subscribers"], r["jobs"]) for r in results["rows"]})
    figure, axes = plt.subplots(figsize=(7, 3.5))
    width = 0.25
    for index, mode in enumerate(modes):
        p99 = [
            next(
                r["p99_ms"]
                for r in results["rows"]
                if (r["subscribers"], r["jobs"], r["mode"]) == (s, j, mode) and not _lockstep(r)
            )
            for s, j in scenarios
        ]
        positions = [n + (index - 1) * width for n in range(len(scenarios))]
        axes.bar(positions, p99, width, label=f"{mode} p99", color=colors[mode])
    axes.axhline(20, linestyle="--", color="#2ca02c", label="target: push p99 ≤ 20 ms")
    axes.set_yscale("log")
    axes.set_xticks(range(len(scenarios)), [f"{s} subscribers\n{j} jobs" for s, j in scenarios])
    axes.set_ylabel("p99 latency (ms, log)")
    axes.set_title("report() to SSE client: push vs polling")
    axes.legend(fontsize=8)
    save_figure(figure, path)


def main() -> None:
    section_main(__doc__ or "", run, summary)


if __name__ == "__main__":
    main()
