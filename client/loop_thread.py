"""An asyncio event loop on a thread of its own, which blocking callers hand coroutines to: the engine under
the sync :class:`~reelcast.client.Client`.

Intentional divergence from anyio's ``start_blocking_portal`` (and asgiref's ``async_to_sync``), which do the
same job:

- The thread is a daemon. A portal runs in a non-daemon executor thread, so a script that forgets to close
  its client would hang at exit. Here the client's ``weakref.finalize`` stops the loop instead, when the
  client is collected or at exit.
- A blocked caller wakes every 0.1 s, as grpc's own blocking calls do. A Ctrl+C (KeyboardInterrupt) therefore
  reaches it on every platform. The call is then cancelled on the loop, and the caller waits until the
  cancellation has run before the interrupt goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

# How often a blocked caller looks up from its wait, so that a pending KeyboardInterrupt is raised.
_WAKE_UP_SECONDS = 0.1


class LoopStoppedError(RuntimeError):
    """The loop was stopped (its client closed): nothing more runs on it."""

    def __init__(self) -> None:
        super().__init__("the client is closed")


def _settled(done: threading.Event) -> None:
    while not done.wait(_WAKE_UP_SECONDS):
        pass


class EventLoopThread:
    """Runs coroutines for blocking callers on one event loop, started by the first call and stopped by
    :meth:`stop`. Safe to call from any number of threads."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._stopped:
                raise LoopStoppedError
            if self._loop is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._serve, args=(ready,), name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
            assert self._loop is not None
            return self._loop

    def _serve(self, ready: threading.Event) -> None:
        # asyncio.Runner's close cancels what is left, finalizes async generators and closes the loop.
        with asyncio.Runner() as runner:
            runner.run(self._until_stopped(ready))

    async def _until_stopped(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        ready.set()
        await self._stopping.wait()

    def run(self, function: Callable[[], Awaitable[T]]) -> T:
        """Runs ``function()`` on the loop and returns its result or raises its exception, blocking this
        thread meanwhile. An exception that interrupts the wait (KeyboardInterrupt) cancels the call first.
        LoopStoppedError once the loop is stopped; ``concurrent.futures.CancelledError`` when the loop stopped
        during the call."""
        if self.in_loop_thread():
            raise RuntimeError("a blocking call from the client's own event loop would never return")
        loop = self._started()
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        done = threading.Event()
        tasks: list[asyncio.Task[T]] = []

        async def call() -> T:
            return await function()

        def start() -> None:
            if self._stopped:
                outcome.set_exception(LoopStoppedError())
            elif outcome.set_running_or_notify_cancel():
                task = loop.create_task(call())
                task.add_done_callback(lambda finished: _copy_outcome(finished, outcome, done))
                tasks.append(task)
                return
            done.set()

        def cancel() -> None:
            for task in tasks:
                task.cancel()

        def abandon() -> None:
            if not outcome.cancel():  # running: cancel the task, and let the cancellation finish
                loop.call_soon_threadsafe(cancel)
                _settled(done)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed since _started
            raise LoopStoppedError from None
        except BaseException:
            # Interrupted inside call_soon_threadsafe (its wake-up write): `start` may be queued all the same,
            # and a task left running would still hold what it awaits (an async generator's step, which
            # could then not be closed).
            abandon()
            raise
        try:
            _settled(done)
        except BaseException:  # KeyboardInterrupt, or SystemExit from a signal handler
            abandon()
            raise
        return outcome.result()

    def run_soon(self, function: Callable[[], Awaitable[Any]]) -> None:
        """Starts ``function()`` on the loop without waiting for it (for the loop's own thread, which cannot
        wait for itself); nothing once the loop is stopped."""
        loop = self._loop
        if loop is None or self._stopped:
            return

        async def call() -> None:
            await function()

        loop.call_soon_threadsafe(lambda: loop.create_task(call()))

    def stop(self, last: Callable[[], Awaitable[None]]) -> None:
        """Runs ``last()`` on the loop (closing what lives on it), then stops the loop and joins its thread.
        Does nothing if the loop never started or was stopped already."""
        with self._lock:
            if self._stopped or self._loop is None:
                self._stopped = True
                return
        if self.in_loop_thread():  # the client was collected on its own loop: finish there
            self.run_soon(lambda: self._stop_after(last))
            return
        try:
            self.run(last)
        finally:
            self._stop_now()
            assert self._thread is not None
            self._thread.join()

    async def _stop_after(self, last: Callable[[], Awaitable[None]]) -> None:
        try:
            await last()
        finally:
            self._stop_now()

    def _stop_now(self) -> None:
        with self._lock:
            self._stopped = True
        assert self._loop is not None and self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set)


def _copy_outcome(
    task: asyncio.Task[T], outcome: concurrent.futures.Future[T], done: threading.Event
) -> None:
    if task.cancelled():
        outcome.set_exception(concurrent.futures.CancelledError())
    elif (error := task.exception()) is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(task.result())
    done.set()
