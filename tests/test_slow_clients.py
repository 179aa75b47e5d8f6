"""Slow consumers: clients that never read cannot hold up the others, nor hold server memory.

50 SSE clients that never read (tiny receive windows) sit beside 50 normal clients on a chatty job. The
normal clients get every event; the stuck ones are dropped after the send timeout; the server's RSS stays
under the bound documented in docs/api.md; and a dropped client that comes back resumes with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.bridge.conftest import SseEvent, read_sse
from tests.processes import ALL_BUILTINS, ServerProcess

STUCK = 50
NORMAL = 50
REPORTS = 1500
# The documented bound (docs/api.md, "Slow consumers") for one `reelcast serve` process in this test.
RSS_BOUND_BYTES = 400 * 1024 * 1024
TERMINAL = {"job-completed", "job-failed"}


@pytest.fixture
def chatty_server(installed_sample_plugin: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        bridge=True,
        env={
            "PYTHONPATH": str(installed_sample_plugin),
            "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
            "REELCAST_SAMPLE_DELAY": "0.002",
            "REELCAST_SAMPLE_REPORTS": str(REPORTS),
            "REELCAST_SAMPLE_MESSAGE_BYTES": "3000",
            "REELCAST_PROGRESS_INTERVAL": "0",
            "REELCAST_SSE_SEND_TIMEOUT": "2",
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def stuck_client(base: str, path: str) -> socket.socket:
    """Opens an SSE request with a tiny receive window and never reads it."""
    parts = urlsplit(base)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def drain_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server left in the socket, and whether the server had closed the connection, within
    ``timeout`` seconds in all. The receive buffer grows first: through the 2 KB window the stuck client
    opened with (far below loopback's 64 KB segment), the megabyte the server's kernel may still hold for it
    would trickle in at the pace of TCP's persist timer, for many minutes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    deadline = time.monotonic() + timeout
    received = bytearray()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(received), False
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(received), True
            received.extend(chunk)
    except (ConnectionResetError, BrokenPipeError):
        return bytes(received), True
    except TimeoutError:
        return bytes(received), False


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def parse_events(raw: bytes) -> list[tuple[str, str]]:
    """(id, event) of every event whose data line arrived, from a raw (chunk-encoded) SSE response."""
    text = raw.decode("utf-8", errors="replace")
    events: list[tuple[str, str]] = []
    current: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(("id:", "event:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()
        elif line.startswith("data:") and "id" in current and "event" in current:
            events.append((current["id"], current["event"]))
            current = {}
    return events


async def test_stuck_clients_are_dropped_and_normal_clients_get_every_event(
    chatty_server: ServerProcess,
) -> None:
    base = chatty_server.http_base
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        created = await client.post("/api/jobs", json={"brief": {"topic": "slow consumers"}})
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]
        path = f"/api/jobs/{job_id}/events"
        stuck = [stuck_client(base, path) for _ in range(STUCK)]
        try:
            async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=120)) as readers:
                normal = await asyncio.gather(*(read_sse(readers, path) for _ in range(NORMAL)))
            peak_rss = rss_bytes(chatty_server.process.pid)  # type: ignore[union-attr]

            expected = list(range(1, len(normal[0].events) + 1))
            assert len(expected) > REPORTS
            for read in normal:
                assert [int(event.id) for event in read.events] == expected
                assert read.events[-1].event == "job-completed"
            assert peak_rss < RSS_BOUND_BYTES, f"server RSS {peak_rss / 2**20:.0f} MiB"

            # The stuck clients are cut off once a write to them has waited longer than the send timeout.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                health = (await client.get("/healthz")).json()
                if health["subscribers"] == 0:
                    break
                await asyncio.sleep(0.5)
            assert health["subscribers"] == 0
            # One thread per socket: the default pool has a handful of threads, and each drain can wait its
            # full timeout, so draining 50 sockets a few at a time could take minutes on a loaded machine.
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(max_workers=len(stuck)) as pool:
                outcomes = await asyncio.gather(
                    *(loop.run_in_executor(pool, drain_until_closed, s, 60) for s in stuck)
                )
            assert all(closed for _, closed in outcomes), "every stuck connection is closed by the server"
            dropped = [raw for raw, _ in outcomes if b"event: job-completed" not in raw]
            assert len(dropped) >= STUCK // 2, "stuck clients must be dropped, not served to the end"

            # A dropped client that comes back resumes after the last event it fully received.
            partial = parse_events(dropped[0])
            last_id = partial[-1][0] if partial else ""
            resumed = await read_sse(client, path, headers={"Last-Event-ID": last_id} if last_id else None)
            ids = [int(event_id) for event_id, _ in partial] + [int(event.id) for event in resumed.events]
            assert ids == sorted(set(ids)), "no duplicate, always increasing"
            statuses = _non_progress(normal[0].events)
            got = {int(event_id) for event_id, kind in partial if kind != "step-progress"}
            got |= {int(event.id) for event in resumed.events if event.event != "step-progress"}
            assert statuses <= got, "status and terminal events are never dropped"
            assert resumed.events[-1].event in TERMINAL
        finally:
            for sock in stuck:
                with contextlib.suppress(OSError):
                    sock.close()


def _non_progress(events: list[SseEvent]) -> set[int]:
    return {int(event.id) for event in events if event.event != "step-progress"}
