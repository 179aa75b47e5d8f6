"""A real webhook receiver on 127.0.0.1 port 0 (a threaded ``http.server``), verifying every delivery with
the Standard Webhooks spec's own ``standardwebhooks`` package, never with reelcast's code.

Its behaviour is set per test: fail the first N attempts, redirect, never answer, or answer an endless body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Delivery:
    headers: dict[str, str]
    payload: dict[str, Any]
    verified_with: list[str]


@dataclass
class Receiver:
    """What the receiver got and how it answers. ``secrets`` are tried in turn by ``standardwebhooks``."""

    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0
    redirect_to: str = ""
    hang_seconds: float = 0.0
    endless_body: bool = False
    attempts: int = 0
    attempt_times: list[float] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    host_headers: list[str] = field(default_factory=list)
    unverified: int = 0
    body_bytes_sent: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Seconds each verified delivery is held before its answer (so that overlapping senders would show in
    # ``max_in_flight``: requests being answered at once).
    answer_after_seconds: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    # The attempt number held, unanswered, until ``released`` is set; ``held_port`` is its sender's port.
    hold_attempt: int = 0
    held_port: int = 0
    held_id: str = ""
    released: threading.Event = field(default_factory=threading.Event)

    def deduplicated(self) -> list[dict[str, Any]]:
        """Each delivery once by ``webhook-id``, in arrival order."""
        seen: set[str] = set()
        unique = []
        for delivery in self.deliveries:
            if delivery.headers["webhook-id"] not in seen:
                seen.add(delivery.headers["webhook-id"])
                unique.append(delivery.payload)
        return unique


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.attempts += 1
                receiver.host_headers.append(self.headers.get("host", ""))
                receiver.attempt_times.append(time.monotonic())
                attempt = receiver.attempts
            if receiver.redirect_to:
                self.send_response(307)
                self.send_header("location", receiver.redirect_to)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if receiver.hang_seconds:
                time.sleep(receiver.hang_seconds)
                return
            if receiver.endless_body:
                self.send_response(200)
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while receiver.body_bytes_sent < 1 << 30:  # 1 GB, unless the client hangs up first
                        self.wfile.write(chunk)
                        receiver.body_bytes_sent += len(chunk)
                except OSError:
                    pass
                return
            if attempt <= receiver.fail_first:
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified_with = []
            for secret in receiver.secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified_with.append(secret)
                except Exception:
                    pass
            with receiver.lock:
                if verified_with:
                    receiver.deliveries.append(Delivery(headers, json.loads(body), verified_with))
                else:
                    receiver.unverified += 1
                receiver.in_flight += 1
                receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
            answering = False
            try:
                if attempt == receiver.hold_attempt:
                    receiver.held_id = headers.get("webhook-id", "")
                    receiver.held_port = self.client_address[1]
                    receiver.released.wait()
                time.sleep(receiver.answer_after_seconds)
                # Out of flight once the answer is decided, before it is written: the sender may go on as
                # soon as the bytes leave, before this thread runs again (the interpreter switches threads
                # every 5 ms), and its next request must not count as overlapping this one.
                with receiver.lock:
                    receiver.in_flight -= 1
                    answering = True
                self.send_response(204 if verified_with else 400)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender is gone (killed while we held its request)
            finally:
                if not answering:
                    with receiver.lock:
                        receiver.in_flight -= 1

    return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def running_receiver(receiver: Receiver | None = None, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """The receiver on ``host`` (``::1`` for IPv6 loopback), port 0."""
    receiver = receiver or Receiver()
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, 0), _handler(receiver))
    server.daemon_threads = True
    named = f"[{host}]" if ":" in host else host
    receiver.url = f"http://{named}:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
