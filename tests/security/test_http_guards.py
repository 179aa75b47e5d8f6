"""What the bridge's HTTP layer refuses before any route runs, against a real ``reelcast serve`` process with
real sockets: Host names it does not answer (DNS rebinding), request heads past the header cap (431, with the
server's RSS bounded), and requests that never finish arriving (closed after the request timeout)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.processes import ALL_BUILTINS, ServerProcess
from tests.test_slow_clients import rss_bytes

HANG_TIMEOUT = 60.0
REQUEST_TIMEOUT_SECONDS = 2
HEADER_CAP = 32 * 1024
BIG_HEADER_BYTES = 20 * 1024 * 1024
# 8 clients sending 20 MiB heads at once raised the RSS by 179 MiB before the cap; with it, each connection
# holds at most the cap plus one read (256 KiB), whatever the client sends.
RSS_GROWTH_BOUND_BYTES = 64 * 1024 * 1024


def _serve(data_dir: Path, args: list[str] | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    process = ServerProcess(
        data_dir,
        bridge=True,
        env={"REELCAST_DISABLED_PLUGINS": ALL_BUILTINS, **(env or {})},
        args=args or [],
    )
    process.start()
    return process


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose allowed hosts come from REELCAST_ALLOWED_HOSTS, with a short request timeout."""
    process = _serve(
        tmp_path_factory.mktemp("guards") / "data",
        env={
            "REELCAST_ALLOWED_HOSTS": "reelcast.example",
            "REELCAST_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_SECONDS),
        },
    )
    try:
        yield process
    finally:
        process.stop()


def _address(process: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(process.http_base)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _healthz(process: ServerProcess, host: str) -> httpx.Response:
    return httpx.get(f"{process.http_base}/healthz", headers={"Host": host}, timeout=HANG_TIMEOUT)


def _assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code and body["status"] == status
    assert body["correlationId"] and body["remediation"]


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(HANG_TIMEOUT)
    received = bytearray()
    while chunk := sock.recv(65536):
        received.extend(chunk)
    return bytes(received)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_only_allowed_host_names_are_answered(guarded: ServerProcess) -> None:
    port = _address(guarded)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "reelcast.example"):
        assert _healthz(guarded, host).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example"):
        _assert_problem(_healthz(guarded, host), 400, "E025-HOST_NOT_ALLOWED")
    # The page and the API are refused the same way: a rebinding page reads nothing.
    page = httpx.get(f"{guarded.http_base}/", headers={"Host": "evil.example"}, timeout=HANG_TIMEOUT)
    _assert_problem(page, 400, "E025-HOST_NOT_ALLOWED")


def test_the_allowed_hosts_flag_adds_names(tmp_path: Path) -> None:
    process = _serve(tmp_path / "data", args=["--allowed-hosts", "video.example,.corp.example"])
    try:
        assert _healthz(process, "video.example").status_code == 200
        assert _healthz(process, "render.corp.example").status_code == 200
        assert _healthz(process, "127.0.0.1").status_code == 200
        _assert_problem(_healthz(process, "reelcast.example"), 400, "E025-HOST_NOT_ALLOWED")
        _assert_problem(_healthz(process, "corp.example.evil"), 400, "E025-HOST_NOT_ALLOWED")
    finally:
        process.stop()


def _send_big_head(address: tuple[str, int], header_bytes: int) -> bytes:
    """A GET /healthz whose one header carries ``header_bytes`` bytes; the server's whole answer."""
    with socket.create_connection(address, timeout=HANG_TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        chunk = b"a" * (1024 * 1024)
        sent = 0
        try:
            while sent < header_bytes:
                sock.sendall(chunk[: header_bytes - sent])
                sent += min(len(chunk), header_bytes - sent)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has answered; its answer is still in our buffer
        return _read_response(sock)


def test_request_heads_past_the_cap_get_431_and_the_rss_stays_bounded(guarded: ServerProcess) -> None:
    address = _address(guarded)
    assert guarded.process is not None
    pid = guarded.process.pid
    assert httpx.get(f"{guarded.http_base}/healthz", headers={"X-Padding": "a" * 16_000}).status_code == 200
    baseline = rss_bytes(pid)
    peak = baseline
    sending = threading.Event()
    sending.set()

    def sample() -> None:
        nonlocal peak
        while sending.is_set():
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _send_big_head(address, BIG_HEADER_BYTES), range(8)))
        answers.append(_send_big_head(address, 32 * 1024 * 1024))
        answers.append(_send_big_head(address, HEADER_CAP + 1))
    finally:
        sending.clear()
        sampler.join()
    for raw in answers:
        status, body = _status_and_body(raw)
        assert status == 431, raw[:200]
        assert body["errorCode"] == "E026-HEADERS_TOO_LARGE" and body["correlationId"]
    assert peak - baseline < RSS_GROWTH_BOUND_BYTES, (baseline, peak)
    assert httpx.get(f"{guarded.http_base}/healthz").status_code == 200


def test_requests_that_never_finish_arriving_are_closed_after_the_timeout(guarded: ServerProcess) -> None:
    address = _address(guarded)
    slow: list[socket.socket] = []
    try:
        for index in range(40):
            sock = socket.create_connection(address, timeout=HANG_TIMEOUT)
            # Slowloris: a head that keeps growing, a byte at a time, and never ends. A body that never
            # arrives, and a connection that never says anything, are cut the same way.
            if index % 4 == 0:
                sock.sendall(b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            elif index % 4 == 1:
                pass
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sock.setblocking(False)
            slow.append(sock)
        closed: dict[int, bytes] = {}
        received: dict[int, bytearray] = {index: bytearray() for index in range(len(slow))}
        deadline = time.monotonic() + 30
        while len(closed) < len(slow) and time.monotonic() < deadline:
            for index, sock in enumerate(slow):
                if index in closed:
                    continue
                try:
                    if index % 4 >= 2:
                        sock.send(b"a")
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed[index] = bytes(received[index])
                    continue
                if chunk:
                    received[index].extend(chunk)
                else:
                    closed[index] = bytes(received[index])
            time.sleep(0.5)
        assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow connections still open"
        for index, raw in closed.items():
            if index % 4 >= 2:  # the head never arrived: 408 before the close
                status, body = _status_and_body(raw)
                assert status == 408 and body["errorCode"] == "E027-REQUEST_TIMEOUT", raw[:200]
    finally:
        for sock in slow:
            sock.close()
    # A request that arrives whole in time is still served.
    assert httpx.get(f"{guarded.http_base}/healthz").status_code == 200
