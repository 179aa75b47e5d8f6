"""The benchmarks' one stage, a third-party plugin found through the ``reelcast`` entry point, so that the
harness measures ``reelcast serve`` exactly as shipped. ``REELCAST_BENCH_STAGE`` picks what it does:

- ``tick``: ``REELCAST_BENCH_TICKS`` reports ``REELCAST_BENCH_INTERVAL`` seconds apart, each carrying the
  wall-clock time of its ``report()`` in its message (progress latency). With ``REELCAST_BENCH_GATE`` set it
  first waits for the file ``go`` there, then for its own phase: a random offset within one interval
  (``REELCAST_BENCH_PHASE=random``, the default) or none (``same``: every job reports at once).
- ``burst``: waits for the file ``go`` in ``REELCAST_BENCH_GATE``, then reports as fast as the server takes
  them until the file ``stop`` appears or ``REELCAST_BENCH_TICKS`` reports were made (fan-out).
- ``idle``: reports once, then waits for ``stop`` (idle connections on a running job).
- ``null``: returns at once (job overhead).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from typing import Any

from reelcast.plugins import Stage, StageContext, hookimpl

# Reports in flight (each is a write task in the server) before the burst yields: the recorder writes every
# tick in order, so a stage that never waits would queue an unbounded backlog of writes.
MAX_PENDING_TASKS = 256


def _gate(name: str) -> str:
    return os.path.join(os.environ.get("REELCAST_BENCH_GATE", "."), name)


async def _wait_for(path: str, ctx: StageContext) -> None:
    # A file, not an event: the harness is another process. One stat per 10 ms costs nothing measured.
    while not os.path.exists(path):  # noqa: ASYNC240
        ctx.raise_if_cancelled()
        await asyncio.sleep(0.01)


async def tick(ctx: StageContext) -> dict[str, Any]:
    ticks = int(os.environ.get("REELCAST_BENCH_TICKS", "50"))
    interval = float(os.environ.get("REELCAST_BENCH_INTERVAL", "0.05"))
    if os.environ.get("REELCAST_BENCH_GATE"):
        await _wait_for(_gate("go"), ctx)
        if os.environ.get("REELCAST_BENCH_PHASE", "random") == "random":
            # Independent jobs report out of phase with each other, not all in the same millisecond.
            await asyncio.sleep(random.uniform(0, interval))
    for index in range(1, ticks + 1):
        await asyncio.sleep(interval)
        ctx.report(index / ticks, f"t={time.time():.6f}")
    return {}


async def burst(ctx: StageContext) -> dict[str, Any]:
    limit = int(os.environ.get("REELCAST_BENCH_TICKS", "1000000"))
    stop = _gate("stop")
    await _wait_for(_gate("go"), ctx)
    baseline = len(asyncio.all_tasks())
    for index in range(1, limit + 1):
        # Distinct messages and rising fractions: the recorder drops a tick that changes nothing.
        ctx.report(index / limit, f"burst {index}")
        if index % 64 == 0:
            if os.path.exists(stop) or ctx.cancelled:  # noqa: ASYNC240 - a stat, every 64 reports
                break
            await asyncio.sleep(0)
            while len(asyncio.all_tasks()) > baseline + MAX_PENDING_TASKS:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
    return {}


async def idle(ctx: StageContext) -> dict[str, Any]:
    ctx.report(0.5, "idle")
    await _wait_for(_gate("stop"), ctx)
    return {}


async def null(ctx: StageContext) -> dict[str, Any]:
    return {}


STAGES: dict[str, Callable[[StageContext], Any]] = {"tick": tick, "burst": burst, "idle": idle, "null": null}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    run = STAGES[os.environ.get("REELCAST_BENCH_STAGE", "tick")]
    register(Stage(name="bench", title="Bench", weight=1, order=100, run=run))
