"""What the bridge's request guard (bridge/http_protocol.py: head cap, request timeout) costs the fan-out.

The fan-out section's reelcast run (bench/fanout.py), twice per round in alternating order: as shipped, and
with uvicorn's plain httptools protocol in its place (the baseline, the bridge before the guard). The
baseline is swapped in by a ``sitecustomize`` module on the server's PYTHONPATH, so both runs start the same
``reelcast serve`` command. Reported: frames/s of each and the per-round ratio guarded ÷ plain.

Run: ``python -m bench.header_guard [--quick]`` prints the results as JSON (docs/benchmarks.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.fanout import QUICK, Scale, run_reelcast

# A modest scale: the machine is small and shared; the guard's cost, if any, is per connection, not per event.
MODEST = Scale(subscribers=300, client_processes=2, warmup=1.0, seconds=3.0, rounds=4)

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
    for index in range(scale.rounds if not quick else 1):
        order = (False, True) if index % 2 == 0 else (True, False)
        rates: dict[str, float] = {}
        for plain in order:
            result = _run(scale, plain)
            if result["connected"] != scale.subscribers or result["frames"] <= 0:
                raise RuntimeError(f"fan-out run delivered nothing or lost subscribers: {result}")
            rates["plain" if plain else "guarded"] = result["frames_per_s"]
        print(json.dumps({"round": index, **rates}), file=sys.stderr, flush=True)
        rounds.append(rates)
    ratios = [r["guarded"] / r["plain"] for r in rounds]
    return {
        "scale": scale.__dict__,
        "rounds": rounds,
        "guarded_median": statistics.median(r["guarded"] for r in rounds),
        "plain_median": statistics.median(r["plain"] for r in rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
