"""The one helper that runs a subprocess under cancellation.

Stages use it through ``StageContext.run_subprocess``. A cancelled or timed-out program is asked to stop
(for ffmpeg, ``q`` on stdin), then killed after a grace period, so that nothing outlives its job.

Each run is a span ``subprocess <program>`` (reelcast.jobs.tracing), a child of the stage's span: the one
place subprocesses run is the one place they are traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from reelcast.jobs.tracing import span

_PLATFORM_SUFFIX = re.compile(r"-(linux|macos|osx|win)[-.\w]*$|\.exe$")


@dataclass(frozen=True)
class ProcessResult:
    """How a subprocess ended."""

    returncode: int
    pid: int
    cancelled: bool = False
    timed_out: bool = False


async def _pump_lines(stream: asyncio.StreamReader | None, sink: Callable[[str], None] | None) -> None:
    if stream is None:
        return
    while True:
        line = await stream.readline()
        if not line:
            return
        if sink is not None:
            sink(line.decode("utf-8", errors="replace").rstrip("\r\n"))


async def run_process(
    argv: Sequence[str],
    *,
    cancel_event: asyncio.Event | None = None,
    on_stdout_line: Callable[[str], None] | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
    graceful_stop: bytes | None = None,
    kill_after: float = 2.0,
    timeout: float | None = None,
    log: logging.LoggerAdapter[logging.Logger] | logging.Logger | None = None,
    on_start: Callable[[int], Any] | None = None,
    cwd: Path | None = None,
) -> ProcessResult:
    """Runs ``argv`` without a shell (in ``cwd`` when given); see the module docstring for how it stops."""
    program = _program_name(argv[0])
    with span(f"subprocess {program}", attributes={"process.executable.name": program}) as process_span:
        result = await _run_process(
            argv,
            cancel_event=cancel_event,
            on_stdout_line=on_stdout_line,
            on_stderr_line=on_stderr_line,
            graceful_stop=graceful_stop,
            kill_after=kill_after,
            timeout=timeout,
            log=log,
            on_start=on_start,
            cwd=cwd,
        )
        process_span.set_attribute("process.exit.code", result.returncode)
        return result


def _program_name(executable: str) -> str:
    """``ffmpeg`` for imageio-ffmpeg's ``ffmpeg-linux-x86_64-v7.0.2`` too: span names stay the same on every
    platform."""
    return _PLATFORM_SUFFIX.sub("", PurePath(executable).name)


async def _run_process(
    argv: Sequence[str],
    *,
    cancel_event: asyncio.Event | None,
    on_stdout_line: Callable[[str], None] | None,
    on_stderr_line: Callable[[str], None] | None,
    graceful_stop: bytes | None,
    kill_after: float,
    timeout: float | None,
    log: logging.LoggerAdapter[logging.Logger] | logging.Logger | None,
    on_start: Callable[[int], Any] | None,
    cwd: Path | None,
) -> ProcessResult:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        on_start(process.pid)
    if log is not None:
        log.debug("started pid %s: %s", process.pid, argv[0])
    pumps = asyncio.gather(
        _pump_lines(process.stdout, on_stdout_line), _pump_lines(process.stderr, on_stderr_line)
    )
    exited = asyncio.ensure_future(process.wait())
    waiters: set[asyncio.Future[Any]] = {exited}
    cancel_wait: asyncio.Future[Any] | None = None
    if cancel_event is not None:
        cancel_wait = asyncio.ensure_future(cancel_event.wait())
        waiters.add(cancel_wait)
    cancelled = timed_out = False
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited not in done:
            cancelled = cancel_wait is not None and cancel_wait in done
            timed_out = not cancelled
            await _stop(process, graceful_stop, kill_after)
    except asyncio.CancelledError:
        # The stage's task itself was cancelled: stop the program before letting the cancellation through.
        await asyncio.shield(_stop(process, graceful_stop, kill_after))
        raise
    finally:
        if cancel_wait is not None:
            cancel_wait.cancel()
        await asyncio.shield(_finish(process, pumps))
    returncode = process.returncode if process.returncode is not None else -9
    return ProcessResult(returncode=returncode, pid=process.pid, cancelled=cancelled, timed_out=timed_out)


async def _stop(process: asyncio.subprocess.Process, graceful_stop: bytes | None, kill_after: float) -> None:
    if process.returncode is not None:
        return
    if graceful_stop is not None and process.stdin is not None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            process.stdin.write(graceful_stop)
            await process.stdin.drain()
    else:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=kill_after)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _finish(process: asyncio.subprocess.Process, pumps: asyncio.Future[Any]) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    if process.stdin is not None:
        process.stdin.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pumps, timeout=5)
