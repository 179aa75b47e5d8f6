"""What a stage is: its registration record and the context it runs in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reelcast.jobs.errors import CANCELLED, MEDIA_NOT_AVAILABLE, ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.process import ProcessResult, run_process

# A stage's artifacts: JSON-serialisable values, usually paths relative to the work dir. They are recorded
# as the stage's checkpoint when it completes, and later stages read them from ``StageContext.artifacts``.
Artifacts = Mapping[str, Any]
StageRun = Callable[["StageContext"], "Awaitable[Artifacts | None] | Artifacts | None"]

# The artifact key under which a stage publishes the job's output (the fields of ``JobOutput`` in
# snake_case). The runner copies it into ``Job.output`` and the terminal event.
OUTPUT_ARTIFACT = "output"


@dataclass(frozen=True)
class VisualTheme:
    """A look a drawing stage offers for ``Plan.style``, as ``ListThemes`` lists it."""

    # What ``Plan.style`` takes ("clean").
    name: str
    title: str
    description: str
    # Makes a PNG of one sample scene drawn in the theme (about 320x180); called when a client asks, so a
    # stage draws nothing at load time.
    preview_png: Callable[[], bytes]


@dataclass(frozen=True)
class Stage:
    """A pipeline stage, registered through the ``register_stages`` hook.

    ``run`` may be a coroutine function or a plain function; a plain function runs in a worker thread so
    that it may block (drawing images, synthesizing speech) without stalling the server.
    """

    name: str
    title: str
    weight: float
    order: int
    run: StageRun
    description: str = ""
    # The stage's own configuration: a dataclass type with a default for every field, filled in by the
    # server from REELCAST_PLUGIN_<STAGE>_<FIELD> variables (reelcast.plugins.settings, docs/plugins.md).
    settings: type[Any] | None = None
    # The visual themes this stage draws (``Plan.style``), the default first. When the installed stages offer
    # themes, CreateJob refuses a style none of them has (``E405-UNKNOWN_THEME``).
    themes: tuple[VisualTheme, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"stage name must be alphanumeric with - or _: {self.name!r}")
        if self.weight <= 0:
            raise ValueError(f"stage {self.name!r} needs a positive weight, got {self.weight}")


@dataclass(frozen=True)
class MediaFile:
    """A file the job's owner uploaded and the job refers to by id (a scene's background, the logo, the
    music track), as the server stored it: already sniffed, checked against its caps and re-encoded, so a
    stage may hand ``path`` to ffmpeg or Pillow without checking it again."""

    media_id: str
    # "image", "clip" or "audio".
    kind: str
    # A local file the stage may read (never write) while it runs.
    path: Path
    content_type: str
    width: int = 0
    height: int = 0
    duration_seconds: float = 0.0


# Publishes a preview file of the running job (StageContext.publish_preview): path relative to the work dir,
# its seconds, the whole video's seconds.
PreviewPublisher = Callable[[str, float, float], Awaitable[None]]


@dataclass(frozen=True)
class Subtask:
    """A program a stage hands to ``StageContext.run_subtask``, which may run it on any worker of the
    deployment (a render segment). Everything it touches is named relative to the job's work dir, which is
    its working directory wherever it runs: the files it reads are sent with it and the files it writes are
    brought back; it must touch no other file. Every worker runs the same install, so ``argv[0]`` (an
    absolute path to ffmpeg, say) is the same program there."""

    # Unique among the subtasks of one stage run ("segment-3").
    name: str
    argv: tuple[str, ...]
    # Work-dir paths of the files it reads, and of those it writes.
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


class SubtaskRunner(Protocol):
    """Runs a subtask somewhere under ``cancel_event`` (the server's: storage/subtasks.py)."""

    async def __call__(
        self,
        subtask: Subtask,
        *,
        cancel_event: asyncio.Event,
        on_stdout_line: Callable[[str], None] | None,
        on_stderr_line: Callable[[str], None] | None,
        graceful_stop: bytes | None,
        kill_after: float,
        timeout: float | None,
    ) -> ProcessResult: ...


# Finds an uploaded file by id for the running job's owner; None when it is gone (deleted, expired) or not
# the owner's.
MediaResolver = Callable[[str], "MediaFile | None"]


@dataclass
class StageContext:
    """Everything a running stage may use. One context per stage run.

    The stage's environment is small on purpose: its job's work dir, a log dir to write its own logs in,
    and its own settings (an instance of ``Stage.settings``, or ``None``), never the server's configuration.
    """

    job_id: str
    correlation_id: str
    stage_name: str
    spec: job_pb2.JobSpec
    work_dir: Path
    # The data dir's log root (``<data>/Logs``): a stage writes its own logs below it (render: ffmpeg/).
    log_dir: Path
    settings: Any
    artifacts: Mapping[str, Any]
    log: logging.LoggerAdapter[logging.Logger]
    # Set when the job is cancelled, and when the runner stops this stage (a stall, low disk space).
    cancel_event: asyncio.Event
    _report: Callable[[float, str], None]
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _media: MediaResolver | None = None
    _preview: PreviewPublisher | None = None
    _subtasks: SubtaskRunner | None = None

    def report(self, fraction: float, message: str = "") -> None:
        """Reports the stage's own progress, 0.0 to 1.0. Safe to call from a worker thread."""
        fraction = min(1.0, max(0.0, float(fraction)))
        try:
            running_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running_loop = None
        if running_loop is self._loop:
            self._report(fraction, message)
        else:
            self._loop.call_soon_threadsafe(self._report, fraction, message)

    async def publish_preview(self, relative: str, duration_seconds: float, total_seconds: float) -> None:
        """Publishes ``relative`` (a playable MP4 in the work dir, from the start of the video and
        ``duration_seconds`` long) as the job's growing preview: stored where any server can serve it, then
        announced in the job's log (``Job.preview``). Each call must name a new file, longer than the last;
        the stage leaves the file in place until the stage ends. Outside a job (tests, bench) nothing is
        published."""
        if self._preview is not None:
            await self._preview(relative, duration_seconds, total_seconds)

    async def run_subtask(
        self,
        subtask: Subtask,
        *,
        cancel_event: asyncio.Event | None = None,
        on_stdout_line: Callable[[str], None] | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
        graceful_stop: bytes | None = None,
        kill_after: float = 2.0,
        timeout: float | None = None,
    ) -> ProcessResult:
        """Runs ``subtask`` as :meth:`run_subprocess` runs a program, but on whichever worker of the
        deployment is free: on the embedded backend here (in the work dir); on NATS as a sub-task of this job
        on the work queue, under the same fair turns and heartbeats as jobs, and again elsewhere when its
        worker is lost. Its output lines arrive here as it runs, its outputs are in the work dir when it
        returns, and a cancel (``cancel_event``, the job's by default) stops it wherever it runs."""
        stop = cancel_event if cancel_event is not None else self.cancel_event
        if self._subtasks is not None:
            return await self._subtasks(
                subtask,
                cancel_event=stop,
                on_stdout_line=on_stdout_line,
                on_stderr_line=on_stderr_line,
                graceful_stop=graceful_stop,
                kill_after=kill_after,
                timeout=timeout,
            )
        return await run_process(
            subtask.argv,
            cancel_event=stop,
            on_stdout_line=on_stdout_line,
            on_stderr_line=on_stderr_line,
            graceful_stop=graceful_stop,
            kill_after=kill_after,
            timeout=timeout,
            log=self.log,
            cwd=self.work_dir,
        )

    @property
    def subtasks_spread(self) -> bool:
        """True when ``run_subtask`` hands subtasks to the deployment's workers (NATS) rather than running
        them here: the queue, not the stage, then decides how many run at once."""
        return self._subtasks is not None

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raises the cancellation error when the stage must stop (see ``cancel_event``); for loops in
        blocking stages."""
        if self.cancel_event.is_set():
            raise ReelcastError(CANCELLED)

    def media(self, media_id: str) -> MediaFile:
        """The uploaded file ``media_id`` of the job's owner, or ``E451-MEDIA_NOT_AVAILABLE`` when it was
        deleted, has expired or is not the owner's (a job whose media went away fails cleanly)."""
        found = self._media(media_id) if self._media is not None else None
        if found is None:
            raise ReelcastError(
                MEDIA_NOT_AVAILABLE, f"The media {media_id!r} this job uses is no longer available."
            )
        return found

    def path(self, relative: str) -> Path:
        """An artifact path (relative to the work dir) as an absolute path."""
        return self.work_dir / relative

    async def run_subprocess(
        self,
        argv: Sequence[str],
        *,
        on_stdout_line: Callable[[str], None] | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
        graceful_stop: bytes | None = None,
        kill_after: float = 2.0,
        timeout: float | None = None,
    ) -> ProcessResult:
        """Runs a program (never through a shell) until it exits, the job is cancelled or ``timeout`` passes.

        On cancel or timeout, ``graceful_stop`` is written to its stdin (ffmpeg stops on ``q``), then it is
        killed after ``kill_after`` seconds. The result says which of these ended it.
        """
        return await run_process(
            argv,
            cancel_event=self.cancel_event,
            on_stdout_line=on_stdout_line,
            on_stderr_line=on_stderr_line,
            graceful_stop=graceful_stop,
            kill_after=kill_after,
            timeout=timeout,
            log=self.log,
        )
