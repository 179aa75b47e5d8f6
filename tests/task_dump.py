"""An asyncio task dump shortly before pytest-timeout ends a hung test.

pytest-timeout dumps threads, and a hung coroutine shows there only as the event loop's ``select``. This dump
walks every pending task's coroutine chain (``cr_await``) to the line each one waits on, so that a hang in CI
names its await.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from types import CoroutineType, FrameType
from typing import Any

# pytest-timeout fires at the ini timeout; the dump runs this long before it.
DUMP_LEAD_SECONDS = 15.0


def _frame_line(frame: FrameType | None) -> str:
    if frame is None:
        return "(finished)"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _await_chain(coroutine: Any) -> list[str]:
    lines: list[str] = []
    seen = 0
    while coroutine is not None and seen < 50:
        seen += 1
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "ag_frame", None)
        lines.append(_frame_line(frame))
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "ag_await", None)
        if (
            coroutine is not None
            and not isinstance(coroutine, CoroutineType)
            and not hasattr(coroutine, "cr_frame")
        ):
            lines.append(f"awaiting {coroutine!r}"[:300])
            break
    return lines


def format_pending_tasks() -> str:
    tasks = [item for item in gc.get_objects() if isinstance(item, asyncio.Task) and not item.done()]
    out = [f"--- {len(tasks)} pending asyncio tasks ---"]
    for task in tasks:
        out.append(f"task {task.get_name()}:")
        out.extend(f"    {line}" for line in _await_chain(task.get_coro()))
    return "\n".join(out)


def start_dump_timer(after_seconds: float, test_id: str) -> threading.Timer:
    def dump() -> None:
        stream = sys.__stderr__
        if stream is not None:
            stream.write(
                f"\n=== asyncio tasks of {test_id}, {after_seconds:.0f} s in ===\n{format_pending_tasks()}\n"
            )
            stream.flush()

    timer = threading.Timer(after_seconds, dump)
    timer.daemon = True
    timer.start()
    return timer
