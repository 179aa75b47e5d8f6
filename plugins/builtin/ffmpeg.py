"""ffmpeg for the built-in stages: finding it, running it with progress, and its per-job log.

There is no ffprobe in imageio-ffmpeg, so facts about a media file come from ffmpeg's own stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.plugins.process import ProcessResult, run_process
from reelcast.plugins.stage import StageContext, Subtask

STDERR_SNIPPET_BYTES = 16 * 1024
SEPARATOR = "-" * 80
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def ffmpeg_executable(configured: str | None) -> str:
    """The configured ffmpeg (a stage's ``ffmpeg_path`` setting), else the one bundled with imageio-ffmpeg
    (never one from PATH by accident).

    Raises E302 when it does not exist or is not executable."""
    if configured:
        located = configured if os.sep in configured else shutil.which(configured)
    else:
        try:
            import imageio_ffmpeg

            located = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as error:
            raise ReelcastError(errors.FFMPEG_NOT_FOUND, f"No bundled ffmpeg: {error}") from error
    if not located or not os.path.isfile(located) or not os.access(located, os.X_OK):
        raise ReelcastError(errors.FFMPEG_NOT_FOUND, f"ffmpeg not found at {configured or located!r}.")
    return located


def utc_stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")


class FfmpegLog:
    """The per-job render log in the seed's format, capped in size.

    The header and the first half of the byte budget are written as they come, so a running render can be
    followed with ``tail -f``; later lines are kept in a bounded tail and written, after a line saying how
    many were left out, when the log is closed with its footer.
    """

    def __init__(
        self,
        path: Path,
        *,
        job_id: str,
        correlation_id: str,
        resolution: str,
        ffmpeg_path: str,
        arguments: Sequence[str],
        max_bytes: int,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] | None = path.open("w", encoding="utf-8", errors="replace")
        header = [
            f"FFmpeg Render Log - Job ID: {job_id}",
            f"Correlation ID: {correlation_id}",
            f"Started: {utc_stamp()}",
            f"Resolution: {resolution}",
            f"FFmpeg Path: {ffmpeg_path}",
            f"Command: {shlex.join(arguments)}",
            SEPARATOR,
        ]
        self._write_lines(header)
        budget = max(0, max_bytes - sum(len(line) + 1 for line in header) - 256)
        self._head_left = budget // 2
        self._tail_budget = budget - budget // 2
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._omitted = 0
        self._snippet: deque[str] = deque()
        self._snippet_bytes = 0

    def _write_lines(self, lines: Sequence[str]) -> None:
        if self._handle is not None:
            self._handle.write("".join(f"{line}\n" for line in lines))
            self._handle.flush()

    def stderr_line(self, text: str) -> None:
        """Records one line of ffmpeg's stderr."""
        line = f"[stderr] {text}"
        size = len(line.encode("utf-8", errors="replace")) + 1
        self._snippet.append(text)
        self._snippet_bytes += len(text.encode("utf-8", errors="replace")) + 1
        while self._snippet_bytes > STDERR_SNIPPET_BYTES and len(self._snippet) > 1:
            self._snippet_bytes -= len(self._snippet.popleft().encode("utf-8", errors="replace")) + 1
        if size <= self._head_left:
            self._head_left -= size
            self._write_lines([line])
            return
        self._head_left = 0
        self._tail.append(line)
        self._tail_bytes += size
        while self._tail_bytes > self._tail_budget and self._tail:
            self._tail_bytes -= len(self._tail.popleft().encode("utf-8", errors="replace")) + 1
            self._omitted += 1

    @property
    def stderr_snippet(self) -> str:
        """The last 16 KB of stderr (whole lines)."""
        text = "\n".join(self._snippet)
        encoded = text.encode("utf-8", errors="replace")
        if len(encoded) > STDERR_SNIPPET_BYTES:
            text = encoded[-STDERR_SNIPPET_BYTES:].decode("utf-8", errors="ignore")
        return text

    def close(self, exit_code: int) -> None:
        """Writes the kept tail and the footer. Safe to call twice (the second call does nothing)."""
        if self._handle is None:
            return
        lines: list[str] = []
        if self._omitted:
            lines.append(f"[log] {self._omitted} lines omitted to keep the log under its size limit")
        lines.extend(self._tail)
        lines.extend([SEPARATOR, f"Completed: {utc_stamp()}", f"Exit Code: {exit_code}"])
        self._write_lines(lines)
        self._handle.close()
        self._handle = None


@dataclass
class ProgressReader:
    """Turns ffmpeg's ``-progress pipe:1`` lines into a clamped, never-decreasing fraction.

    ``out_time_us`` can be ``N/A`` or jump backwards (for example around the first packets), so only
    larger values count."""

    total_seconds: float
    on_fraction: Callable[[float, float], None]
    fraction: float = 0.0
    _fields: dict[str, str] = field(default_factory=dict)

    def line(self, text: str) -> None:
        key, _, value = text.partition("=")
        key = key.strip()
        value = value.strip()
        if key == "out_time_us":
            try:
                seconds = int(value) / 1_000_000
            except ValueError:
                return
            self._advance(seconds / self.total_seconds if self.total_seconds > 0 else 0.0, seconds)
        elif key == "progress" and value == "end":
            self._advance(1.0, self.total_seconds)

    def _advance(self, fraction: float, seconds: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.fraction:
            self.fraction = fraction
            self.on_fraction(fraction, min(seconds, self.total_seconds))


async def run_ffmpeg(
    ctx: StageContext,
    argv: Sequence[str],
    *,
    log: FfmpegLog | None = None,
    on_stdout_line: Callable[[str], None] | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
    subtask: Subtask | None = None,
) -> ProcessResult:
    """Runs ffmpeg under the job's cancellation: ``q`` on stdin, then a kill after 2 s. With ``subtask``
    (whose argv is ``argv``) it runs through ``ctx.run_subtask``: on any worker of the deployment.

    Unlike a plain ``ctx.run_subprocess``, a cancellation of the stage's task does not lose the exit code:
    the process runs in its own task, which is told to stop and then awaited, so ``log`` always gets its
    footer with the real exit code before the cancellation goes on.
    """
    stop = asyncio.Event()

    async def follow_job_cancel() -> None:
        await ctx.cancel_event.wait()
        stop.set()

    def stderr_line(text: str) -> None:
        if log is not None:
            log.stderr_line(text)
        if on_stderr_line is not None:
            on_stderr_line(text)

    follower = asyncio.ensure_future(follow_job_cancel())
    running = (
        ctx.run_subtask(
            subtask,
            cancel_event=stop,
            on_stdout_line=on_stdout_line,
            on_stderr_line=stderr_line,
            graceful_stop=b"q",
            kill_after=2.0,
            timeout=timeout,
        )
        if subtask is not None
        else run_process(
            argv,
            cancel_event=stop,
            on_stdout_line=on_stdout_line,
            on_stderr_line=stderr_line,
            graceful_stop=b"q",
            kill_after=2.0,
            timeout=timeout,
            log=ctx.log,
        )
    )
    process = asyncio.ensure_future(running)
    exit_code = -9
    try:
        result = await asyncio.shield(process)
        exit_code = result.returncode
        return result
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(Exception):
            exit_code = (await process).returncode
        raise
    except (FileNotFoundError, PermissionError) as error:
        raise ReelcastError(errors.FFMPEG_NOT_FOUND, f"ffmpeg could not be started: {error}") from error
    finally:
        follower.cancel()
        if log is not None:
            log.close(exit_code)


def parse_duration(stderr_text: str) -> float | None:
    """The container duration from ffmpeg's input dump (``Duration: 00:00:17.53``)."""
    match = _DURATION.search(stderr_text)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
