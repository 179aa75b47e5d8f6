"""uvicorn's httptools protocol with the two limits it lacks: a cap on the request head and a request timeout.

httptools buffers a header until its end arrives, whatever its size, and uvicorn waits for a request head
forever (its keep-alive timeout starts only after a response). So a client without any key could hold
memory with huge heads, or connections with heads that never end (slowloris). This protocol:

- counts the bytes of each request head (request line and headers) as they arrive, and answers 431
  ``E026-HEADERS_TOO_LARGE`` once they pass ``max_head_bytes``, so a connection buffers at most the cap plus
  one read;
- closes a request that has not arrived whole (head and body) ``timeout_seconds`` after it began, or after
  the connection opened, with 408 ``E027-REQUEST_TIMEOUT`` while no answer has started.

After a refusal it stops parsing, sends its answer, shuts its side and discards what the client still sends
for a moment (nginx's lingering close): closing with unread bytes would reset the connection and could lose
the answer on its way.

Intentional divergence from uvicorn's h11 protocol, which has a head limit
(``h11_max_incomplete_event_size``): h11 parses in Python and has no request timeout either; this keeps
httptools' C parser for the SSE fan-out (docs/benchmarks.md gives the measured cost of the check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from reelcast.bridge.eventstream import CONNECTION_KEY
from reelcast.bridge.problems import ApiError, problem_response
from reelcast.jobs import errors
from reelcast.jobs.errors import ErrorCode
from reelcast.jobs.metadata import accept_correlation_id

# How long a refused connection keeps discarding what the client still sends before it closes.
LINGER_SECONDS = 2.0


class LeanEvent:
    """What uvicorn uses of ``asyncio.Event`` (``wait``, ``set``, ``clear``, ``is_set``), its waiters in a
    list. An ``asyncio.Event`` allocates a deque block of 64 slots (760 bytes) at birth, and uvicorn makes
    two for every connection (its flow control and the request's message event), which an idle SSE stream
    holds for its whole life (docs/benchmarks.md, idle connections)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # cancelled before set()
                self._waiters.remove(waiter)
        return True


class LeanPipeline:
    """What uvicorn uses of the deque of pipelined requests (``appendleft``, ``pop``, truth), in a list: the
    deque's 760-byte block was the largest allocation of an idle connection, and pipelining is rare."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Any] = []

    def appendleft(self, item: Any) -> None:
        self._items.insert(0, item)

    def pop(self) -> Any:
        return self._items.pop()

    def __len__(self) -> int:
        return len(self._items)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Set the limits with :func:`guarded_protocol`; uvicorn makes one instance per connection."""

    max_head_bytes = 32 * 1024
    timeout_seconds = 15.0
    # Class defaults, set on an instance only when used: an idle connection's protocol is its largest
    # part, and every attribute set in __init__ grows each instance's __dict__.
    _on_disconnect: Callable[[], None] | None = None
    _lost = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = LeanPipeline()  # type: ignore[assignment]
        self._reading_head = True
        self._head_bytes = 0
        self._request_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = LeanEvent(value=True)  # type: ignore[assignment]
        self._start_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_request_timer()
        super().connection_lost(exc)
        self._lost = True
        callback = self._on_disconnect
        if callback is not None:
            self._on_disconnect = None
            callback()

    # What an SSE stream uses beyond ASGI (bridge/eventstream.py ``StreamConnection``).
    def notify_disconnect(self, callback: Callable[[], None] | None) -> bool:
        if self._lost:
            return False
        self._on_disconnect = callback
        return True

    def can_write_now(self, scope: Scope) -> bool:
        cycle = self.cycle
        return (
            cycle is not None
            and cycle.scope is scope  # not a pipelined request's cycle
            and cycle.response_started
            and not cycle.response_complete
            and bool(cycle.chunked_encoding)
            and not cycle.disconnected
            and not self.flow.write_paused
            and not self._lost
            and not self.transport.is_closing()
        )

    def write_chunk(self, body: bytes) -> None:
        """One chunk, framed as uvicorn's ``send`` frames a body (RequestResponseCycle.send)."""
        self.transport.write(b"".join([b"%x\r\n" % len(body), body, b"\r\n"]))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: discard
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_head_bytes and not self._refused:
            self._refuse(errors.HEADERS_TOO_LARGE)

    # Parser callbacks. Once refused, nothing more of this connection reaches the app.
    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self.scope[CONNECTION_KEY] = self  # type: ignore[literal-required]
        self._reading_head = True
        self._head_bytes = 0
        self._start_request_timer()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_head = False
        head_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head_bytes > self.max_head_bytes:
            self._refuse(errors.HEADERS_TOO_LARGE)
            return
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request's cycle, whose task has not run yet
            self.cycle.message_event = LeanEvent()  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._stop_request_timer()
        super().on_message_complete()

    def _start_request_timer(self) -> None:
        self._stop_request_timer()
        self._request_timer = self.loop.call_later(self.timeout_seconds, self._request_timed_out)

    def _stop_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._reading_head and not answering:
            self._refuse(errors.REQUEST_TIMEOUT)
        else:  # the app has the request (or a previous one) and may be answering: only cut the connection
            self.transport.close()

    def _refuse(self, error: ErrorCode) -> None:
        """Answers ``error`` with the catalogue's body, then lingers and closes."""
        self._refused = True
        self._stop_request_timer()
        response = problem_response(ApiError(error), accept_correlation_id(None))
        head = [STATUS_LINE[error.http_status]]
        for name, value in (*response.raw_headers, (b"connection", b"close")):
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", response.body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:  # TLS cannot half-close
            self.transport.close()


def guarded_protocol(max_head_bytes: int, timeout_seconds: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "timeout_seconds": timeout_seconds},
    )
