"""A third-party plugin, shipped as its own distribution and found through the ``reelcast`` entry point."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reelcast.plugins import CANCELLED, STAGE_FAILED, ReelcastError, Stage, StageContext, Subtask, hookimpl


@dataclass(frozen=True)
class StampSettings:
    """Filled in by the server from ``REELCAST_PLUGIN_STAMP_<FIELD>``, or the older names in ``env``."""

    # Tests that kill the server mid-stage slow the stage down with this...
    delay: float = field(default=0.01, metadata={"env": "REELCAST_SAMPLE_DELAY"})
    # ...and the slow-consumer test makes it chatty with these.
    reports: int = field(default=5, metadata={"env": "REELCAST_SAMPLE_REPORTS"})
    message_bytes: int = field(default=0, metadata={"env": "REELCAST_SAMPLE_MESSAGE_BYTES"})
    # The subtask tests (tests/nats/test_subtask_workers.py): this many subtasks, each a Python that sleeps
    # for ``subtask_seconds`` and copies the stamp's input into its part, run at once (``ctx.run_subtask``).
    subtasks: int = field(default=0, metadata={"env": "REELCAST_SAMPLE_SUBTASKS"})
    subtask_seconds: float = field(default=1.0, metadata={"env": "REELCAST_SAMPLE_SUBTASK_SECONDS"})


async def stamp(ctx: StageContext) -> dict[str, Any]:
    settings: StampSettings = ctx.settings
    padding = "." * settings.message_bytes
    target = ctx.path("stamp.txt")
    for index in range(1, settings.reports + 1):
        ctx.raise_if_cancelled()
        await asyncio.sleep(settings.delay)
        ctx.report(index / settings.reports, f"stamping {index}/{settings.reports}{padding}")
    parts = await _run_parts(ctx, settings) if settings.subtasks else ""
    target.write_text(f"stamped {ctx.spec.brief.topic}\n{parts}", encoding="utf-8")
    return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


PART_PROGRAM = (
    "import pathlib, sys, time; time.sleep(float(sys.argv[1])); "
    "pathlib.Path(sys.argv[3]).write_text(pathlib.Path(sys.argv[2]).read_text() + sys.argv[4])"
)


async def _run_parts(ctx: StageContext, settings: StampSettings) -> str:
    """Runs the subtasks at once and joins their parts in order."""
    ctx.path("stamp-input.txt").write_text(f"part of {ctx.spec.brief.topic} ", encoding="utf-8")
    ctx.path("parts").mkdir(exist_ok=True)

    async def part(number: int) -> None:
        output = f"parts/{number}.txt"
        argv = (sys.executable, "-c", PART_PROGRAM, str(settings.subtask_seconds), "stamp-input.txt", output)
        subtask = Subtask(f"part-{number}", (*argv, str(number)), ("stamp-input.txt",), (output,))
        result = await ctx.run_subtask(subtask)
        if result.cancelled:
            raise ReelcastError(CANCELLED)
        if result.returncode != 0:
            raise ReelcastError(STAGE_FAILED, f"part {number} exited with {result.returncode}")

    await asyncio.gather(*(part(number) for number in range(settings.subtasks)))
    return "\n".join(ctx.path(f"parts/{number}.txt").read_text() for number in range(settings.subtasks))


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
