"""cancel_and_wait (server/tasks.py): a stop that ends even when a task loses its cancel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reelcast.server import tasks
from reelcast.server.tasks import cancel_and_wait


async def test_a_task_that_loses_its_first_cancel_is_cancelled_again_and_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "LOST_CANCEL_RETRY_SECONDS", 0.05)
    cancels_seen = 0

    async def loop_that_swallows_one_cancel() -> None:
        # What asyncio.wait_for does on Python 3.11 when the cancel lands as its wait ends.
        nonlocal cancels_seen
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels_seen += 1
                if cancels_seen > 1:
                    raise

    task = asyncio.create_task(loop_that_swallows_one_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 10)
    assert task.cancelled()
    assert cancels_seen == 2


async def test_a_task_that_ends_with_an_error_is_logged_and_the_others_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("closing failed")

    async def quiet() -> None:
        await asyncio.sleep(3600)

    first, second = asyncio.create_task(failing(), name="failing"), asyncio.create_task(quiet())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger=tasks.__name__):
        await asyncio.wait_for(cancel_and_wait(first, None, second), 10)
    assert second.cancelled() and first.done()
    assert "failing" in caplog.text and "closing failed" in caplog.text
