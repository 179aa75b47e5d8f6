"""Stages that log in every way a stage can: through ``ctx.log``, through a module logger from a coroutine and
from a worker thread, and from a subprocess's output callback. Every message starts with the stage's name, so
a test can check the ``stage`` field of each line against it. A job whose topic is ``fail`` fails in its
second stage; ``REELCAST_LOGGING_DELAY`` (seconds) slows each stage down."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from reelcast.plugins import Stage, StageContext, hookimpl

log = logging.getLogger("reelcast_logging_plugin")


def _delay() -> float:
    return float(os.environ.get("REELCAST_LOGGING_DELAY", "0"))


async def speak(ctx: StageContext) -> dict[str, Any]:
    ctx.log.info("speak: through the stage's own logger")
    log.info("speak: through a module logger, in a coroutine")
    result = await ctx.run_subprocess(
        [sys.executable, "-c", "print('hello from a subprocess')"],
        on_stdout_line=lambda line: log.info("speak: the subprocess said %r", line),
    )
    log.info("speak: the subprocess exited with %s", result.returncode)
    await asyncio.sleep(_delay())
    ctx.report(1.0, "spoken")
    return {"speech": "none"}


def draw(ctx: StageContext) -> dict[str, Any]:
    # A plain function: the runner calls it in a worker thread.
    log.info("draw: through a module logger, in a worker thread")
    ctx.log.warning("draw: through the stage's own logger, in a worker thread")
    time.sleep(_delay())
    if ctx.spec.brief.topic == "fail":
        log.error("draw: failing on purpose")
        raise RuntimeError("draw failed on purpose")
    target = ctx.path("drawing.txt")
    target.write_text("drawn\n", encoding="utf-8")
    ctx.report(1.0, "drawn")
    return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(Stage(name="speak", title="Speak", weight=1, order=10, run=speak))
    register(Stage(name="draw", title="Draw", weight=1, order=20, run=draw))
