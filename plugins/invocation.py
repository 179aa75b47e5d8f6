"""The one function that runs a stage: the job runner and the test kit both call it.

It builds the stage's context, calls the stage (a coroutine function in the loop, a plain function in a
worker thread so that it may block), awaits what it returns if that is awaitable, and turns an unexpected
exception into E300-STAGE_FAILED. A ``ReelcastError`` (the stage's own, catalogued failure) and a task
cancellation pass through unchanged: what a cancel means (the job's cancel, a stall, low disk space) is the
caller's to say.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.host import await_me_maybe
from reelcast.plugins.stage import MediaResolver, PreviewPublisher, Stage, StageContext, SubtaskRunner


def stage_logger(stage_name: str, job_id: str, correlation_id: str) -> logging.LoggerAdapter[logging.Logger]:
    """``ctx.log``: the stage's logger, bound to its job and correlation ids."""
    return logging.LoggerAdapter(
        logging.getLogger(f"reelcast.stage.{stage_name}"),
        {"job_id": job_id, "correlation_id": correlation_id},
    )


async def run_stage(
    stage: Stage,
    *,
    job_id: str,
    correlation_id: str,
    spec: job_pb2.JobSpec,
    work_dir: Path,
    log_dir: Path,
    settings: Any,
    artifacts: Mapping[str, Any],
    cancel_event: asyncio.Event,
    report: Callable[[float, str], None],
    media: MediaResolver | None = None,
    preview: PreviewPublisher | None = None,
    subtasks: SubtaskRunner | None = None,
) -> dict[str, Any]:
    """Runs ``stage`` once and returns the artifacts it produced (``{}`` for ``None``)."""
    context = StageContext(
        job_id=job_id,
        correlation_id=correlation_id,
        stage_name=stage.name,
        spec=spec,
        work_dir=work_dir,
        log_dir=log_dir,
        settings=settings,
        artifacts=dict(artifacts),
        log=stage_logger(stage.name, job_id, correlation_id),
        cancel_event=cancel_event,
        _report=report,
        _media=media,
        _preview=preview,
        _subtasks=subtasks,
    )
    result: Any
    try:
        if inspect.iscoroutinefunction(stage.run):
            result = await stage.run(context)
        else:
            result = await await_me_maybe(await asyncio.to_thread(stage.run, context))
            # Reports from the worker thread arrive through call_soon_threadsafe: let them land first.
            await asyncio.sleep(0)
    except ReelcastError:
        raise
    except Exception as unexpected:
        context.log.exception("job %s: stage %s raised", job_id, stage.name)
        detail = f"Stage '{stage.name}' failed unexpectedly ({type(unexpected).__name__})."
        raise ReelcastError(errors.STAGE_FAILED, detail) from unexpected
    return dict(result or {})
