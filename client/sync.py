"""The synchronous client: :class:`AsyncClient`'s methods, each run to its end on a private event loop thread.

One implementation serves both clients. Request building, response mapping, error mapping, retries and the
watch's resumption are written once, in :class:`AsyncClient`. Each method here is that method, wrapped:
:class:`_Blocking` for a call, :class:`_BlockingIterator` for a stream. The wrapper runs it on an event loop
that the client starts on first use, in a daemon thread of its own (reelcast.client.loop_thread).

Dual clients solve this in two ways:

- Generate the sync code from the async code, as httpcore, elasticsearch-py and PyMongo do with unasync.
  That leaves two copies to review and ship. It also cannot give the same behaviour here: blocking grpc and
  ``grpc.aio`` differ in exactly the places the watch depends on (how a closed channel ends a call, how a
  stream is cancelled).
- Run the async implementation on a loop in a background thread, as dask's ``distributed.Client``, Starlette's
  ``TestClient`` (an anyio blocking portal) and kr8s do. This is the way taken here. It costs one thread per
  client and one hand-off between threads per call or streamed message. Against a network round trip, that
  cost is noise.

What the wrapper adds, and nothing else:

- **Threads.** Any number of threads may share a client. Their calls run side by side on the one loop, as
  they would on one ``grpc.aio`` channel.
- **Running event loops.** A client works inside someone else's running event loop too, because its own loop
  is on another thread; the caller's loop is blocked meanwhile, as by any blocking call.
- **Iterators.** ``watch_job``, ``watch_jobs``, ``list_jobs`` and ``read_artifact`` are generators that
  fetch one item per ``next``. Closing one early (``break``, ``close()``, garbage collection) closes the async
  generator, and that cancels the stream.
- **Ctrl+C.** KeyboardInterrupt reaches a blocked caller within 0.1 s. The call is cancelled first, so the
  client stays usable.
- **Close.** :meth:`Client.close` closes the channel (calls in flight end with CallCancelledError, as on
  ``AsyncClient``), stops the loop and joins its thread. A client that is never closed is closed when it is
  collected, or at exit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, cast, overload

import grpc

from reelcast.client.aio import AsyncClient
from reelcast.client.connection import ClientBase
from reelcast.client.errors import CallCancelledError
from reelcast.client.loop_thread import EventLoopThread, LoopStoppedError

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")  # what an AsyncClient method returns: a coroutine or an async generator
S = TypeVar("S")  # what the Client method returns for it

# Guards the start and the close of every Client's engine (held for a thread start at most).
_ENGINE_LOCK = threading.Lock()
_END = object()  # what an exhausted async iterator's step returns (StopAsyncIteration cannot cross a task)


@dataclass(frozen=True)
class _Engine:
    client: AsyncClient
    loop: EventLoopThread
    stop: weakref.finalize[Any, Any]


class _Delegated(Generic[P, R, S]):
    """A method of :class:`Client` that starts the :class:`AsyncClient` method of the same name, with the same
    arguments, and hands what it returns (``R``) to :meth:`_hand_over` for the sync caller (``S``)."""

    def __init__(self, method: Callable[Concatenate[AsyncClient, P], R]) -> None:
        self._method = method
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, client: Client, owner: type | None = None) -> Callable[P, S]: ...
    def __get__(self, client: Client | None, owner: type | None = None) -> Self | Callable[P, S]:
        if client is None:
            return self
        method = self._method

        def delegated(*args: P.args, **kwargs: P.kwargs) -> S:
            return self._hand_over(client, lambda engine: method(engine, *args, **kwargs))

        delegated.__name__ = delegated.__qualname__ = self._name
        delegated.__doc__ = self.__doc__
        return delegated

    def _hand_over(self, client: Client, start: Callable[[AsyncClient], R]) -> S:
        raise NotImplementedError


class _Blocking(_Delegated[P, Coroutine[Any, Any, T], T]):
    """A call: blocks until the coroutine has returned."""

    def _hand_over(self, client: Client, start: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
        return client._run(start)


class _BlockingIterator(_Delegated[P, AsyncGenerator[T, None], Generator[T, None, None]]):
    """A stream: a generator that takes one item at a time from the async generator."""

    def _hand_over(
        self, client: Client, start: Callable[[AsyncClient], AsyncGenerator[T, None]]
    ) -> Generator[T, None, None]:
        return client._iterate(start)


class Client(ClientBase):
    """A client of the reelcast ``JobService`` for blocking code (scripts, threads, WSGI apps), with the
    methods of :class:`AsyncClient`; the constructor's options are
    :class:`~reelcast.client.connection.ClientBase`'s.

    Use it as ``with Client(...) as client:``, or call :meth:`close`. It is safe to share between threads.
    """

    _engine: _Engine | None = None

    def _started(self) -> _Engine:
        with _ENGINE_LOCK:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._engine is None:
                client = AsyncClient.from_connection(self.connection)
                loop = EventLoopThread(f"reelcast-client {self.connection.target}")
                # Not a method of self: the finalizer must not keep the client alive.
                stop = weakref.finalize(self, loop.stop, client.close)
                self._engine = _Engine(client, loop, stop)
            return self._engine

    def _run(self, call: Callable[[AsyncClient], Awaitable[T]]) -> T:
        engine = self._started()
        try:
            return engine.loop.run(lambda: call(engine.client))
        except LoopStoppedError:
            raise RuntimeError("the client is closed") from None
        except concurrent.futures.CancelledError:  # the loop stopped under a call waiting to retry
            raise CallCancelledError(grpc.StatusCode.CANCELLED, "the client was closed") from None

    def _iterate(
        self, open_stream: Callable[[AsyncClient], AsyncGenerator[T, None]]
    ) -> Generator[T, None, None]:
        engine = self._started()
        stream = open_stream(engine.client)

        async def step() -> T | object:
            try:
                return await anext(stream)
            except StopAsyncIteration:
                return _END

        exhausted = False
        try:
            while True:
                try:
                    item = self._run(lambda _: step())
                except RuntimeError:
                    if not self._closed:
                        raise
                    # As on AsyncClient, whose closed channel cancels the streams it carries.
                    raise CallCancelledError(grpc.StatusCode.CANCELLED, "the client was closed") from None
                if item is _END:
                    exhausted = True
                    return
                yield cast(T, item)
        finally:
            # Left early (break, close, an error, an interrupt): closing the async generator cancels its call.
            # One that raised has ended already, and closing it again does nothing.
            if not exhausted:
                self._close_stream(engine, stream)

    @staticmethod
    def _close_stream(engine: _Engine, stream: AsyncGenerator[Any, None]) -> None:
        if engine.loop.in_loop_thread():  # collected on the loop itself, which cannot wait for itself
            engine.loop.run_soon(stream.aclose)
            return
        with contextlib.suppress(LoopStoppedError):  # a closed client's loop closed the stream on stopping
            engine.loop.run(stream.aclose)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled, and watches end with CallCancelledError."""
        with _ENGINE_LOCK:
            self._closed = True
            engine = self._engine
        if engine is not None:
            engine.stop()

    def __enter__(self) -> Client:
        self._run(lambda engine: engine.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    create_job = _Blocking(AsyncClient.create_job)
    get_job = _Blocking(AsyncClient.get_job)
    list_jobs_page = _Blocking(AsyncClient.list_jobs_page)
    list_jobs = _BlockingIterator(AsyncClient.list_jobs)
    cancel_job = _Blocking(AsyncClient.cancel_job)
    retry_job = _Blocking(AsyncClient.retry_job)
    delete_job = _Blocking(AsyncClient.delete_job)
    update_job_script = _Blocking(AsyncClient.update_job_script)
    approve_job = _Blocking(AsyncClient.approve_job)
    list_stages = _Blocking(AsyncClient.list_stages)
    watch_job = _BlockingIterator(AsyncClient.watch_job)
    watch_jobs = _BlockingIterator(AsyncClient.watch_jobs)
    read_artifact = _BlockingIterator(AsyncClient.read_artifact)
    upload_media = _Blocking(AsyncClient.upload_media)
    get_media = _Blocking(AsyncClient.get_media)
    list_media_page = _Blocking(AsyncClient.list_media_page)
    delete_media = _Blocking(AsyncClient.delete_media)
    create_webhook = _Blocking(AsyncClient.create_webhook)
    list_webhooks_page = _Blocking(AsyncClient.list_webhooks_page)
    delete_webhook = _Blocking(AsyncClient.delete_webhook)
    rotate_webhook_secret = _Blocking(AsyncClient.rotate_webhook_secret)
    replay_webhook = _Blocking(AsyncClient.replay_webhook)
    replay_webhook_since = _Blocking(AsyncClient.replay_webhook_since)
