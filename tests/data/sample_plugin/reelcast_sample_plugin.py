"""A third-party plugin, shipped as its own distribution and found through the ``reelcast`` entry point."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from reelcast.plugins import Stage, StageContext, hookimpl


async def stamp(ctx: StageContext) -> dict[str, Any]:
    # Tests that kill the server mid-stage slow the stage down with this variable.
    delay = float(os.environ.get("REELCAST_SAMPLE_DELAY", "0.01"))
    # ...and the slow-consumer test makes it chatty with this one.
    reports = int(os.environ.get("REELCAST_SAMPLE_REPORTS", "5"))
    padding = "." * int(os.environ.get("REELCAST_SAMPLE_MESSAGE_BYTES", "0"))
    target = ctx.path("stamp.txt")
    for index in range(1, reports + 1):
        ctx.raise_if_cancelled()
        await asyncio.sleep(delay)
        ctx.report(index / reports, f"stamping {index}/{reports}{padding}")
    target.write_text(f"stamped {ctx.spec.brief.topic}\n", encoding="utf-8")
    return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(name="stamp", title="Stamp", weight=5, order=450, run=stamp, description="Writes a stamp.")
    )
