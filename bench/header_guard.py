"""What the bridge's request guard (bridge/http_protocol.py: head cap, request timeout) costs the fan-out.

The fan-out section's reelcast run (bench/fanout.py), twice per round in alternating order: as shipped, and
with uvicorn's plain httptools protocol in its place (the baseline, the bridge before the guard). The
baseline is swapped in by a ``sitecustomize`` module on the server's PYTHONPATH, so both runs start the same
``reelcast serve`` command. Reported: frames/s of each and the per-round ratio guarded ÷ plain.

Run alone: ``python -m bench.header_guard [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.fanout import QUICK, Scale, run_reelcast
from bench.harness import pyplot, save_figure, section_main

# A modest scale: the machine is small and shared; the guard's cost, if any, is per connection, not per event.
MODEST = Scale(subscribers=300, client_processes=2, warmup=1.0, seconds=3.0, rounds=4)
VARIANTS = ("guarded", "plain")
LABELS = {"guarded": "reelcast as shipped (guarded)", "plain": "plain httptools protocol (baseline)"}

_PLAIN_PROTOCOL = """\
import reelcast.bridge.http_protocol as guarded
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

guarded.guarded_protocol = lambda max_head_bytes, timeout_seconds: HttpToolsProtocol
"""


def _run(scale: Scale, plain: bool) -> dict[str, Any]:
    saved = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="reelcast-bench-guard-") as scratch:
        if plain:
            site = Path(scratch) / "site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(_PLAIN_PROTOCOL)
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), saved]))
        try:
            work = Path(scratch) / "work"
            work.mkdir()
            return run_reelcast(scale, work)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved


def run(quick: bool = False) -> dict[str, Any]:
    scale = QUICK if quick else MODEST
    rounds = []
    # Other work on the machine moves both variants' rates: the load average says how much there was.
    load = [os.getloadavg()[0]]
    for index in range(scale.rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        rates: dict[str, float] = {}
        for plain in order:
            result = _run(scale, plain)
            if result["connected"] != scale.subscribers or result["frames"] <= 0:
                raise RuntimeError(f"fan-out run delivered nothing or lost subscribers: {result}")
            rates["plain" if plain else "guarded"] = result["frames_per_s"]
        print(f"bench: header_guard round {index}: {rates}", file=sys.stderr, flush=True)
        rounds.append(rates)
        load.append(os.getloadavg()[0])
    return {"scale": scale.__dict__, "rounds": rounds, "load": load, "cores": os.cpu_count()}


def _ratios(results: dict[str, Any]) -> list[float]:
    return [r["guarded"] / r["plain"] for r in results["rounds"] if r["plain"] > 0]


def summary(results: dict[str, Any]) -> dict[str, float]:
    rounds, ratios = results["rounds"], _ratios(results)
    return {
        "guarded_median": statistics.median(r["guarded"] for r in rounds),
        "plain_median": statistics.median(r["plain"] for r in rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def section(results: dict[str, Any], plot_path: str) -> str:
    scale, s = results["scale"], summary(results)
    lines = [
        "## Request guard cost (issue 14)",
        "",
        "What the bridge's request guard (bridge/http_protocol.py: a cap on request heads, a timeout for "
        "requests that never finish) costs the fan-out: the fan-out section's reelcast path with "
        f"{scale['subscribers']} subscribers, {scale['client_processes']} raw-socket client processes, a "
        f"{scale['seconds']:.0f} s window after a {scale['warmup']:.0f} s warm-up, run as shipped and with "
        "uvicorn's plain httptools protocol in its place (the baseline: the bridge before the guard), "
        f"alternating which goes first; {scale['rounds']} rounds. The guard counts bytes only while a "
        "request head arrives and arms one timer per request, never per event, so its expected cost is "
        "nil; the spread of the per-round ratios is the machine's noise. uvicorn's h11 protocol, which "
        "caps heads but has no request timeout, was not chosen: it parses in Python.",
        "",
        *_load_note(results),
        "| server | frames/s median | frames/s min–max | guarded ÷ this (median, min–max) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in VARIANTS:
        rates = [r[name] for r in results["rounds"]]
        spread = f"{s['ratio_median']:.2f} ({s['ratio_min']:.2f}–{s['ratio_max']:.2f})"
        ratio = spread if name == "plain" else ""
        lines.append(
            f"| {LABELS[name]} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {ratio} |"
        )
    lines += ["", f"![Request guard cost]({plot_path})", ""]
    return "\n".join(lines)


def _load_note(results: dict[str, Any]) -> list[str]:
    """How busy the machine was: a 1-minute load average above its cores means other work shared them."""
    if "load" not in results:
        return []
    load, cores = results["load"], results["cores"]
    busy = " (busier than its cores: other work shared the machine, so the rates are noisy)"
    return [
        f"1-minute load average over the run: {min(load):.1f}–{max(load):.1f} on {cores} cores"
        f"{busy if max(load) > cores else ''}.",
        "",
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    figure, axes = plt.subplots(figsize=(7, 3.5))
    for index, name in enumerate(VARIANTS):
        rates = [r[name] / 1000 for r in results["rounds"]]
        axes.bar(index, statistics.median(rates), color=("#d62728", "#1f77b4")[index])
        axes.scatter([index] * len(rates), rates, color="black", s=10, zorder=3)
    axes.set_xticks(range(len(VARIANTS)), [LABELS[name] for name in VARIANTS])
    axes.set_ylabel("thousand frames/s delivered")
    ratio = summary(results)["ratio_median"]
    axes.set_title(f"Request guard: guarded ÷ plain = {ratio:.2f} (bars: median; dots: rounds)")
    save_figure(figure, path)


def main() -> None:
    section_main(__doc__ or "", run, summary)


if __name__ == "__main__":
    main()
