"""``make bench``: runs every benchmark, then writes docs/benchmarks.md and docs/images/bench-*.png anew.

Each harness (render, segments, latency, fanout, header_guard, overhead, tracing, connections) runs its
subjects and their baselines side by side and returns plain results; this module saves them in
bench/results/NAME.json, draws one plot per section and writes the document: the machine, the versions, the
date, the wall time, the targets met or not, then every section.

``python -m bench.run --quick`` is the CI smoke run: every harness at tiny scale, writing into a temp dir
(never docs/); it checks that events flow and documents get written, and asserts no timing.
``--only fanout,overhead`` reruns those sections and reuses the others' saved results (the document says so);
a section with no saved results (bench/results/ is not committed, so in a fresh clone none has) keeps its
text and target rows from the current document. ``--rewrite`` reruns nothing and rewrites the document and
plots from the saved results.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import connections, fanout, header_guard, latency, nchan, overhead, render, segments, tracing
from bench.harness import ROOT

SECTIONS: dict[str, ModuleType] = {
    "render": render,
    "segments": segments,
    "latency": latency,
    "fanout": fanout,
    "header_guard": header_guard,
    "overhead": overhead,
    "tracing": tracing,
    "connections": connections,
}
# The document's order (the issue's); the run order above puts the longest, steadiest one first.
DOC_ORDER = ("latency", "fanout", "header_guard", "overhead", "tracing", "connections", "render", "segments")
# How each section's text and target rows begin in the document: a section that was not rerun and has no
# saved results is carried over from the current document by these.
HEADINGS = {
    "latency": "## Progress latency",
    "fanout": "## Fan-out throughput",
    "header_guard": "## Request guard cost",
    "overhead": "## Job overhead",
    "tracing": "## Tracing overhead",
    "connections": "## Idle connections",
    "render": "## Render",
    "segments": "## Scene-parallel render",
}
TARGET_ROWS = {
    "latency": "| Progress latency:",
    "fanout": "| Fan-out:",
    "overhead": "| Job overhead:",
    "connections": "| Connections:",
    "render": "| Render (",
    "segments": "| Scene-parallel render:",
}
PACKAGES = ("grpcio", "protobuf", "starlette", "uvicorn", "uvloop", "httptools", "nats-py")


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_kib / 1024 / 1024:.0f} GiB; {platform.system()} "
        f"{platform.release()} ({platform.machine()})"
    )


def versions() -> str:
    from google.protobuf.internal import api_implementation

    parts = [
        f"Python {platform.python_version()}",
        f"reelcast {importlib.metadata.version('reelcast')} "
        f"({_git('rev-parse', '--short', 'HEAD')}{'+dirty' if _git('status', '--porcelain') else ''})",
    ]
    for package in PACKAGES:
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    parts.append(f"protobuf backend {api_implementation.Type()}")
    if nchan.available():
        parts.append(f"{nchan.nginx_version()} with libnginx-mod-nchan {nchan.nchan_version()}")
    return ", ".join(parts)


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


# -- targets ---------------------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| target | measured (same run) | verdict |", "| --- | --- | --- |"]
    if "latency" in results:
        push = [r for r in results["latency"]["rows"] if r["mode"] == "push"]
        largest = max((r for r in push if not latency._lockstep(r)), key=lambda r: r["subscribers"])
        ratio = latency._ratio(results["latency"], largest) or 0.0
        lockstep = [r for r in push if latency._lockstep(r)]
        worst = f"; every job reporting at once: p99 {lockstep[0]['p99_ms']:,.1f} ms" if lockstep else ""
        rows.append(
            f"| Progress latency: p99 ≤ 20 ms at 1,000 subscribers, ≥ 25 × better than the 1 s poller's mean "
            f"| push p99 {largest['p99_ms']:,.1f} ms at {largest['subscribers']:,} subscribers over "
            f"{largest['jobs']} jobs; poll-1s mean ÷ push p99 = {ratio:.2f}{worst} "
            f"| {_verdict(largest['p99_ms'] <= 20 and ratio >= 25)} |"
        )
    if "fanout" in results:
        s = fanout.summary(results["fanout"])
        reelcast_rate, vs_nchan = s["reelcast_median"], s.get("vs_nchan_median", 0.0)
        rows.append(
            "| Fan-out: ≥ 100,000 events/s delivered through the whole path, and ≥ nchan's rate "
            f"| {reelcast_rate:,.0f} frames/s (median); reelcast ÷ nchan = {vs_nchan:.2f}; "
            f"ceiling (bare Starlette) {s['starlette_median']:,.0f} "
            f"| {_verdict(reelcast_rate >= 100_000 and vs_nchan >= 1)} |"
        )
    if "overhead" in results:
        s = overhead.summary(results["overhead"])
        rows.append(
            f"| Job overhead: ≥ 500 null jobs/s on SQLite | {s['sqlite_median']:,.0f} jobs/s on SQLite, "
            f"{s['nats_median']:,.0f} on NATS (medians); echo {s['echo_median']:,.0f} calls/s "
            f"| {_verdict(s['sqlite_median'] >= 500)} |"
        )
    if "connections" in results:
        result = next(r for r in results["connections"]["servers"] if r["server"] == "reelcast")
        last = result["steps"][-1]
        kilobytes = last["per_connection_kib"] * 1.024
        held = last["open"] == last["connections"]
        rows.append(
            f"| Connections: {last['connections']:,} idle SSE connections at ≤ 40 KB each "
            f"| {last['open']:,} of {last['connections']:,} held, {kilobytes:.1f} KB "
            f"({last['per_connection_kib']:.1f} KiB) each "
            f"| {_verdict(held and last['connections'] >= 10_000 and kilobytes <= 40)} |"
        )
    if "render" in results:
        for size in results["render"]["sizes"]:
            name = f"reelcast render stage, {size}"
            vs_bare, vs_moviepy = render._ratios(results["render"], name)
            rows.append(
                f"| Render ({size}, motion, crossfades, captions): ≥ 5 × faster than moviepy, ≤ 1.15 × bare "
                f"ffmpeg | moviepy ÷ reelcast = {vs_moviepy:.2f}; reelcast ÷ bare ffmpeg = {vs_bare:.2f}; "
                f"{render.realtime_factor(results['render'], name):.2f} × real time "
                f"| {_verdict(vs_moviepy >= 5 and vs_bare <= 1.15)} |"
            )
    if "segments" in results:
        split = segments.summary(results["segments"])
        counts = [r["segments"] for r in results["segments"]["renders"][1:]]
        two = split.get("speedup_2_segments", 0.0)
        worst_ssim = min(split[f"worst_ssim_{count}_segments"] for count in counts)
        model = {row["workers"]: row["speedup"] for row in results["segments"]["model"]}
        rows.append(
            f"| Scene-parallel render: {results['segments']['narration_seconds']:.0f} s "
            f"{results['segments']['size']} "
            f"motion, 2 workers ≥ {segments.TARGET_SPEEDUP} × 1, SSIM ≥ 0.99 "
            f"| 2 segments on this machine {two:.2f} × (the single render keeps "
            f"{split['single_render_cores_busy']:.2f} cores busy); worst frame SSIM {worst_ssim:.4f}; "
            f"model: 2 workers {model.get(2.0, 0.0):.2f} ×, 4 workers {model.get(4.0, 0.0):.2f} × "
            f"| {_verdict(two >= segments.TARGET_SPEEDUP and worst_ssim >= 0.99)} |"
        )
        if "nats_overhead_per_segment_seconds" in split:
            spread = results["segments"]["nats_render"]
            rows.append(
                f"| Scene-parallel render: segments as NATS subtasks, overhead measured for the model "
                f"| {spread['segments']} segments over 2 worker processes: "
                f"{split['nats_overhead_per_segment_seconds'] * 1000:.0f} ms per segment (moving its files, "
                f"claiming it); worst frame SSIM {split['nats_worst_ssim']:.4f} | measured |"
            )
        if "first_preview_share" in split:
            share = split["first_preview_share"]
            target = segments.TARGET_FIRST_PREVIEW_SHARE
            rows.append(
                f"| Scene-parallel render: first playable preview ≤ {target:.0%} of the single render "
                f"| {split['first_preview_seconds']:.1f} s, {share:.0%} of the single render "
                f"| {_verdict(share <= target)} |"
            )
    return rows


# -- the document ------------------------------------------------------------------------------------------


def document(
    results: dict[str, dict[str, Any]],
    reused: dict[str, str],
    images: Path,
    output: Path,
    wall_seconds: float,
    section_seconds: dict[str, float],
    analysis: str,
    date: str,
    carried: CarriedOver | None = None,
) -> str:
    carried = carried or CarriedOver()
    timing = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in section_seconds.items())
    run_name = "this run" if reused else "`make bench`"
    carried_rows = [
        row for name in TARGET_ROWS if name not in results for row in carried.target_rows.get(name, [])
    ]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/run.py); do not edit by hand: the next run rewrites this file and "
        "the plots. Every number sits beside its baseline measured in the same run, on the same machine, "
        "and comparisons are given as ratios. The machine is shared and noisy; where a harness repeats "
        "its rounds, medians are reported with the spread.",
        "",
        f"- Date: {date}",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- Wall time of {run_name}: {wall_seconds:.0f} s ({timing}).",
    ]
    for name, when in reused.items():
        lines.append(f"- The {name} section was not rerun: its results are from {when}.")
    if carried.sections and carried.machine and carried.machine != machine():
        lines.append(f"{CARRIED_MACHINE}{carried.machine}")
    lines += [
        "",
        "How each harness works is in its module's docstring (bench/*.py). The servers measured are the "
        "product as shipped: `reelcast serve` / `reelcast bridge` processes with the bench stage "
        "(bench/plugin) installed by pip as a third-party plugin, authentication off (loopback; the event "
        "path is measured, not key checks), `REELCAST_PROGRESS_INTERVAL=0` so that no report is coalesced "
        "away before it is stored. Clients are separate processes.",
        "",
        "## Targets (issue 10)",
        "",
        *_in_target_order(targets(results) + carried_rows),
        "",
    ]
    relative = os.path.relpath(images, output.parent)
    for name in DOC_ORDER:
        if name in results:
            lines.append(SECTIONS[name].section(results[name], f"{relative}/bench-{name}.png"))
        elif name in carried.sections:
            lines.append(carried.sections[name])
    if analysis:
        lines += [analysis.rstrip(), ""]
    return "\n".join(lines)


def _in_target_order(rows: list[str]) -> list[str]:
    """The table's header first, then one group of rows per section in ``TARGET_ROWS`` order."""
    prefixes = list(TARGET_ROWS.values())

    def rank(row: str) -> int:
        return next((index for index, prefix in enumerate(prefixes) if row.startswith(prefix)), -1)

    return sorted(rows, key=rank)


CARRIED_MACHINE = "- The sections carried over from the previous document ran on: "
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"


@dataclass
class CarriedOver:
    """Sections of the current document kept verbatim because they were neither rerun nor saved: their text,
    their target rows and when they were measured."""

    sections: dict[str, str] = field(default_factory=dict)
    target_rows: dict[str, list[str]] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    machine: str = ""


def carried_over(output: Path, names: list[str]) -> CarriedOver:
    """What the current document at ``output`` says about the sections ``names``, found by their headings."""
    carried = CarriedOver()
    if not output.exists():
        return carried
    lines = output.read_text(encoding="utf-8").split(ANALYSIS_START, 1)[0].splitlines()
    date = next((line.removeprefix("- Date: ") for line in lines if line.startswith("- Date: ")), "?")
    # Sections carried over before keep the machine they ran on.
    earlier = next((line for line in lines if line.startswith(CARRIED_MACHINE)), "")
    machine_line = next((line for line in lines if line.startswith("- Machine: ")), "")
    carried.machine = earlier.removeprefix(CARRIED_MACHINE) or machine_line.removeprefix("- Machine: ")
    for name in names:
        start = next((i for i, line in enumerate(lines) if line.startswith(HEADINGS[name])), None)
        if start is None:
            continue
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        carried.sections[name] = "\n".join([*lines[start:end], ""] if lines[end - 1] else lines[start:end])
        prefix = TARGET_ROWS.get(name)
        carried.target_rows[name] = [line for line in lines if prefix and line.startswith(prefix)]
        # A section already carried over keeps the date of its own run.
        note = f"- The {name} section was not rerun: its results are from "
        carried.dates[name] = next(
            (line.removeprefix(note).rstrip(".") for line in lines if line.startswith(note)), date
        )
    return carried


def kept_analysis(output: Path) -> str:
    """The hand-written analysis (between the markers) survives regeneration: it explains the gaps and the
    plans, which no run can write."""
    if not output.exists():
        return ""
    text = output.read_text(encoding="utf-8")
    if ANALYSIS_START not in text:
        return ""
    return ANALYSIS_START + text.split(ANALYSIS_START, 1)[1].split(ANALYSIS_END, 1)[0] + ANALYSIS_END


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny scale, never writes docs/")
    parser.add_argument("--only", default="", help="comma-separated sections to rerun; the rest are reused")
    parser.add_argument("--output", type=Path, help="default: docs/benchmarks.md (a temp dir with --quick)")
    parser.add_argument("--started", type=float, help="when `make bench` started (epoch seconds)")
    parser.add_argument("--rewrite", action="store_true", help="rerun nothing: rewrite the document only")
    args = parser.parse_args()
    started = args.started or time.time()
    scratch = tempfile.TemporaryDirectory(prefix="reelcast-bench-smoke-") if args.quick else None
    if scratch is not None:
        output = args.output or Path(scratch.name) / "benchmarks.md"
        store = Path(scratch.name) / "results"
    else:
        output = args.output or ROOT / "docs" / "benchmarks.md"
        store = ROOT / "bench" / "results"
    images = output.parent / "images"
    store.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    only = [name for name in args.only.split(",") if name] or ([] if args.rewrite else list(SECTIONS))
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    results: dict[str, dict[str, Any]] = {}
    reused: dict[str, str] = {}
    section_seconds: dict[str, float] = {}
    unsaved = [name for name in SECTIONS if name not in only and not (store / f"{name}.json").exists()]
    carried = carried_over(output, unsaved)
    for name, module in SECTIONS.items():
        saved = store / f"{name}.json"
        if name not in only:
            if saved.exists():
                results[name] = json.loads(saved.read_text())
                reused[name] = datetime.datetime.fromtimestamp(saved.stat().st_mtime, datetime.UTC).strftime(
                    "%Y-%m-%d %H:%M UTC"
                )
            elif name in carried.sections:
                reused[name] = carried.dates[name]
            continue
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        began = time.monotonic()
        run: Callable[[bool], dict[str, Any]] = module.run
        results[name] = run(args.quick)
        section_seconds[name] = time.monotonic() - began
        saved.write_text(json.dumps(results[name], indent=2))
        print(
            f"bench: {name} took {section_seconds[name]:.0f} s: {module.summary(results[name])}",
            file=sys.stderr,
        )
    for name, result in results.items():
        SECTIONS[name].plot(result, images / f"bench-{name}.png")
    wall = time.time() - started
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    timings = store / "timings.json"
    if section_seconds:
        timings.write_text(json.dumps({"wall": wall, "sections": section_seconds, "date": date}))
    elif timings.exists():
        # Nothing rerun: the document keeps the last run's date and wall time, and names only the sections
        # whose results are older than that run.
        saved_timings = json.loads(timings.read_text())
        wall, section_seconds = saved_timings["wall"], saved_timings["sections"]
        date = saved_timings.get("date", date)
        reused = {name: when for name, when in reused.items() if name not in section_seconds}
    text = document(
        results, reused, images, output, wall, section_seconds, kept_analysis(output), date, carried
    )
    output.write_text(text, encoding="utf-8")
    print(f"bench: wrote {output} and {images}/bench-*.png in {wall:.0f} s", file=sys.stderr)
    if scratch is not None:
        for name in only:
            if not (images / f"bench-{name}.png").stat().st_size:
                raise RuntimeError(f"no plot for {name}")
        scratch.cleanup()


if __name__ == "__main__":
    main()
