"""Stopping background tasks, when a cancel can be lost.

On Python 3.11 ``asyncio.wait_for`` swallows a cancel that lands as its wait ends: it returns the result
instead of raising (python/cpython gh-86296, fixed in 3.12). A loop that waits through it (ours, or nats-py's
``request``) then goes on as if never cancelled, and ``task.cancel(); await task`` waits for ever. A stop
that hung this way held a NATS server's shutdown until pytest-timeout ended the test.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

# How long a cancelled task gets to end (its ``finally`` blocks run meanwhile) before it is cancelled again.
LOST_CANCEL_RETRY_SECONDS = 1.0


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels ``tasks`` and returns once every one has ended, cancelling again any still running after
    ``LOST_CANCEL_RETRY_SECONDS``. An error a task ended with is logged, not raised: the caller stops."""
    given = [task for task in tasks if task is not None]
    pending = {task for task in given if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=LOST_CANCEL_RETRY_SECONDS)
        for task in pending:
            log.debug("task %s still runs after its cancel: cancelling it again", task.get_name())
    for task in given:
        if not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r while stopping", task.get_name(), task.exception())
