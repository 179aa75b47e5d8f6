"""How a reelcast process stops on SIGINT or SIGTERM, in bounded time whatever its backend does.

- The first signal sets the stop event: the process takes no new work, running jobs get the shutdown grace
  (``REELCAST_SHUTDOWN_GRACE``), then connections and stores close.
- That stop is bounded. If the process still runs ``STOP_BOUND_SECONDS`` after the grace (a NATS call that
  keeps retrying against a server that is gone, a close that never returns), a watchdog logs it and exits
  with status 1.
- A second SIGINT or SIGTERM exits at once, with status 128 + the signal's number (as a shell reports a
  process killed by that signal).

Intentional divergence: the watchdog is a thread and the second signal a plain ``signal.signal`` handler,
not event-loop callbacks, because what hangs may be the event loop itself (a call that ignores cancellation,
``asyncio.run`` waiting for it as it tears down). Both end with ``os._exit``, which skips ``finally`` blocks.
That is safe for the data: the store loses nothing a process acknowledged when it dies, and unfinished jobs
resume from their last checkpoint, as after a crash. The process's own subprocesses (ffmpeg) are killed
first, so that none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

# Beyond the shutdown grace, how long closing calls, connections and stores may take before the process
# exits regardless.
STOP_BOUND_SECONDS = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Status of a process the watchdog ended (a second signal exits with 128 + its number).
WATCHDOG_EXIT_STATUS = 1


def install_stop_signals(grace_seconds: float) -> asyncio.Event:
    """Handles SIGINT and SIGTERM for the running event loop as the module docstring says, and returns the
    event the first of them sets. ``grace_seconds`` is the shutdown grace the stop gives running jobs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def first(signum: int) -> None:
        for each in STOP_SIGNALS:
            loop.remove_signal_handler(each)
            signal.signal(each, _exit_at_once)
        limit = grace_seconds + STOP_BOUND_SECONDS
        log.info(
            "%s: stopping (running jobs get %g s, exit regardless after %g s; a second signal stops at once)",
            signal.Signals(signum).name,
            grace_seconds,
            limit,
        )
        watchdog = threading.Timer(limit, _exit_overdue, args=(limit,))
        watchdog.daemon = True
        watchdog.start()
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, first, signum)
    return stop


async def unless_stopped(step: Awaitable[object], stop: asyncio.Event) -> bool:
    """Awaits ``step`` unless ``stop`` is set first, in which case ``step`` is cancelled; whether it finished
    (its error, if it failed, is raised). For what a process does before it serves: reaching NATS may take a
    minute while a server is down."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, STOP_BOUND_SECONDS)
    return False


def _exit_at_once(signum: int, _frame: FrameType | None) -> None:
    log.warning("%s again: stopping at once", signal.Signals(signum).name)
    _exit(128 + signum)


def _exit_overdue(limit: float) -> None:
    log.error("shutdown: still running %g s after the stop signal; exiting now", limit)
    _exit(WATCHDOG_EXIT_STATUS)


def _exit(status: int) -> None:
    _kill_children()
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(status)


def _kill_children() -> None:
    """SIGKILLs this process's children (found in /proc; elsewhere none are found, and they see their pipes
    close when this process exits)."""
    me = str(os.getpid())
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            # The parent pid is the 4th field, after the command name in parentheses (which may hold spaces).
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if parent == me:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
