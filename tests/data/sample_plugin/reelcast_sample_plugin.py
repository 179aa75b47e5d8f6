"""A third-party plugin, shipped as its own distribution and found through the ``reelcast`` entry point."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reelcast.plugins import Stage, StageContext, hookimpl


@dataclass(frozen=True)
class StampSettings:
    """Filled in by the server from ``REELCAST_PLUGIN_STAMP_<FIELD>``, or the older names in ``env``."""

    # Tests that kill the server mid-stage slow the stage down with this...
    delay: float = field(default=0.01, metadata={"env": "REELCAST_SAMPLE_DELAY"})
    # ...and the slow-consumer test makes it chatty with these.
    reports: int = field(default=5, metadata={"env": "REELCAST_SAMPLE_REPORTS"})
    message_bytes: int = field(default=0, metadata={"env": "REELCAST_SAMPLE_MESSAGE_BYTES"})


async def stamp(ctx: StageContext) -> dict[str, Any]:
    settings: StampSettings = ctx.settings
    padding = "." * settings.message_bytes
    target = ctx.path("stamp.txt")
    for index in range(1, settings.reports + 1):
        ctx.raise_if_cancelled()
        await asyncio.sleep(settings.delay)
        ctx.report(index / settings.reports, f"stamping {index}/{settings.reports}{padding}")
    target.write_text(f"stamped {ctx.spec.brief.topic}\n", encoding="utf-8")
    return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="stamp",
            title="Stamp",
            weight=5,
            order=450,
            run=stamp,
            settings=StampSettings,
            description="Writes a stamp.",
        )
    )
