"""Review before render (``JobSpec.review_script``): the script a waiting job shows its owner, the owner's
approved scenes written back for the later stages, and the sweep that ends reviews nobody approved.

A job that asks for review stops after the stage that wrote its ``script`` artifact: its status becomes
``JOB_STATUS_AWAITING_REVIEW`` and ``Job.review`` holds the scenes, and the worker finishes its claim, so the
waiting holds no runner slot. Edits and the approval are events in the job's log, written by the runner under
the job's lock (runner.py); the approval queues the job again and it resumes from its checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.artifacts import ScriptArtifact, ScriptSceneArtifact
from reelcast.server.config import Settings
from reelcast.server.execution.recorder import now_timestamp
from reelcast.server.storage.job_store import PageCursor

if TYPE_CHECKING:
    from reelcast.server.execution.runner import JobRunner

log = logging.getLogger("reelcast.server.runner")

# The sweep runs at least this often, and at least four times per timeout (a short one in tests).
MAX_SWEEP_INTERVAL_SECONDS = 60.0
# How many waiting jobs one sweep reads per page.
SWEEP_PAGE = 500


def read_script_scenes(path: Path) -> list[job_pb2.Scene]:
    """The scenes of a ``script.json`` (plugins/artifacts.py ``ScriptArtifact``)."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [
        job_pb2.Scene(
            title=str(scene.get("title", "")),
            narration=str(scene.get("narration", "")),
            caption=str(scene.get("caption", "")),
            visual_hint=str(scene.get("visual_hint", "")),
        )
        for scene in document.get("scenes", [])
    ]


def write_script_scenes(path: Path, scenes: Sequence[job_pb2.Scene], language: str) -> None:
    """Replaces the scenes of a ``script.json`` with approved ones, in the shape the script stage writes (a
    caption defaults to the narration, as for a user-supplied script). Other keys of the document stay."""
    document: dict[str, Any] = {}
    if path.is_file():
        document = json.loads(path.read_text(encoding="utf-8"))
    written: list[ScriptSceneArtifact] = []
    for scene in scenes:
        narration = scene.narration.strip()
        written.append(
            ScriptSceneArtifact(
                title=scene.title.strip(),
                narration=narration,
                caption=scene.caption.strip() or narration,
                visual_hint=scene.visual_hint.strip(),
            )
        )
    script: ScriptArtifact = {"language": str(document.get("language") or language), "scenes": written}
    document.update(script)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")


def open_review(job: job_pb2.Job, scenes: Sequence[job_pb2.Scene], timeout_seconds: float) -> None:
    """Fills ``job.review`` with the written script: revision 1, expiring ``timeout_seconds`` from now."""
    review = job.review
    review.Clear()
    review.scenes.extend(scenes)
    review.revision = 1
    expire = now_timestamp()
    expire.FromNanoseconds(expire.ToNanoseconds() + round(timeout_seconds * 1e9))
    review.expire_time.CopyFrom(expire)


def is_expired(job: job_pb2.Job, now_ns: int) -> bool:
    return (
        job.status == job_pb2.JOB_STATUS_AWAITING_REVIEW
        and job.review.HasField("expire_time")
        and job.review.expire_time.ToNanoseconds() <= now_ns
    )


def sweep_interval(settings: Settings) -> float:
    return max(0.05, min(MAX_SWEEP_INTERVAL_SECONDS, settings.review_timeout_seconds / 4))


async def expire_reviews(runner: JobRunner) -> list[str]:
    """Fails every job whose review expired (E703); returns their ids."""
    now_ns = now_timestamp().ToNanoseconds()
    expired: list[str] = []
    cursor: PageCursor | None = None
    while True:
        page = await runner.store.list_jobs(None, [job_pb2.JOB_STATUS_AWAITING_REVIEW], SWEEP_PAGE, cursor)
        for job in page:
            if is_expired(job, now_ns) and await runner.expire_review(job.id):
                expired.append(job.id)
        if len(page) < SWEEP_PAGE:
            return expired
        last = page[-1]
        cursor = PageCursor(last.create_time.ToMicroseconds(), last.id)


async def expire_reviews_periodically(settings: Settings, runner: JobRunner) -> None:
    """Every API server's schedule (server/app.py): a sweep every ``sweep_interval``. Two servers that
    sweep at once write one failure: the second finds the job's log moved on (ConcurrentWriteError)."""
    interval = sweep_interval(settings)
    while True:
        try:
            for job_id in await expire_reviews(runner):
                log.info("job %s: review expired", job_id)
        except Exception:
            log.exception("review expiry sweep failed; retrying at the next interval")
        await asyncio.sleep(interval)
