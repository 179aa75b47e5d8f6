"""SSE subscribers on raw asyncio sockets, for the fan-out and connection benchmarks. One process holds many
connections; the harness runs several such processes beside the server, never inside it.

Standalone on purpose (no reelcast import):
``python bench/frame_clients.py --port P --paths /a,/b --count N``.
Protocol on stdio, one JSON line per answer:

- once every connection got its response head: ``{"ready": ok, "failed": n, "status": [...]}``;
- ``window START END`` (wall-clock seconds): counts the frames (occurrences of ``--marker``) that arrive in
  that window, then prints ``{"frames", "cpu", "open", "bytes"}`` and exits; ``cpu`` is this process's CPU
  seconds inside the window, which shows that the client is not the bottleneck;
- ``status``: prints ``{"open": n}`` (connections the server has not closed);
- ``quit`` (or end of input): exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from typing import cast


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Totals:
    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.counting = False
        self.frames = 0
        self.bytes = 0
        self.open = 0


class Subscriber(asyncio.Protocol):
    """Counts ``marker`` in the body while the window is open; the last ``len(marker) - 1`` bytes are kept
    so that a marker split across two reads is counted once."""

    def __init__(self, request: bytes, totals: Totals) -> None:
        self.request = request
        self.totals = totals
        self.head = b""
        self.tail = b""
        self.status = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence the cast rather than a check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.status.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self.head.split(b" ", 2)[1])
            data = self.head[end + 4 :]
            self.head = b""
            self.totals.open += 1
            self.status.set_result(status)
        totals = self.totals
        if totals.counting:
            chunk = self.tail + data
            totals.frames += chunk.count(totals.marker)
            totals.bytes += len(data)
            self.tail = chunk[1 - len(totals.marker) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.status.done():
            self.totals.open -= 1
        else:
            self.status.set_result(0)


async def _connect(host: str, port: int, path: str, totals: Totals, slots: asyncio.Semaphore) -> int:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    async with slots:
        try:
            _transport, protocol = await loop.create_connection(
                lambda: Subscriber(request, totals), host, port
            )
            return await asyncio.wait_for(protocol.status, 60)
        except (OSError, TimeoutError):
            return 0


async def _main(args: argparse.Namespace) -> None:
    totals = Totals(args.marker.encode())
    paths = args.paths.split(",")
    slots = asyncio.Semaphore(args.parallel)
    statuses = await asyncio.gather(
        *(_connect(args.host, args.port, paths[i % len(paths)], totals, slots) for i in range(args.count))
    )
    ok = sum(1 for status in statuses if status == 200)
    print(json.dumps({"ready": ok, "failed": args.count - ok, "status": sorted(set(statuses))}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "quit":
            return
        if words[0] == "status":
            print(json.dumps({"open": totals.open}), flush=True)
        elif words[0] == "window":
            start, end = float(words[1]), float(words[2])
            await asyncio.sleep(max(0.0, start - time.time()))
            totals.counting = True
            cpu = _cpu()
            await asyncio.sleep(max(0.0, end - time.time()))
            totals.counting = False
            cpu = _cpu() - cpu
            result = {"frames": totals.frames, "cpu": cpu, "open": totals.open, "bytes": totals.bytes}
            print(json.dumps(result), flush=True)
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths", required=True, help="comma-separated; connection i takes path i mod n")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--marker", default="event: step-progress")
    parser.add_argument("--parallel", type=int, default=64, help="connections opened at once")
    args = parser.parse_args()
    # The open-files limit is raised to the hard one: a process holds thousands of sockets.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(_main(args))


if __name__ == "__main__":
    main()
