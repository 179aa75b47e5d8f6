"""Shared pieces of the benchmarks: a server process with a ticking stage, and SSE client processes.

The server side runs in its own process (``python bench/harness.py serve …``): a real gRPC server, the real
bridge, and a bench stage that reports progress at a fixed rate with the wall-clock time of each report in its
message. Clients run in other processes (``python bench/harness.py clients …``) on raw asyncio sockets, so
the harness is never the bottleneck and never shares a core's event loop with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# -- server process -------------------------------------------------------------------------------------


def _bench_plugin(ticks: int, interval: float) -> object:
    from reelcast.plugins import Stage, StageContext, hookimpl

    async def tick(ctx: StageContext) -> dict[str, Any]:
        for index in range(1, ticks + 1):
            await asyncio.sleep(interval)
            ctx.report(index / ticks, f"t={time.time():.6f}")
        return {}

    class BenchPlugin:
        @hookimpl
        def register_stages(self, register: Callable[[Stage], None]) -> None:
            register(Stage(name="tick", title="Tick", weight=1, order=100, run=tick))

    return BenchPlugin()


async def _serve(args: argparse.Namespace) -> None:
    from reelcast.bridge.server import serve_bridge
    from reelcast.plugins.host import PluginHost
    from reelcast.server.app import ReelcastServer
    from reelcast.server.config import Settings

    settings = Settings(
        data_dir=Path(args.data_dir),
        grpc_listen="127.0.0.1:0",
        max_concurrent_jobs=args.concurrency,
        progress_min_interval_seconds=0.0,
        retention_seconds=10**9,
        # Loopback only; measured is the event path, not authentication.
        auth_required=False,
    )
    host = PluginHost.load(builtins=False)
    host.register(_bench_plugin(args.ticks, args.interval), "bench")
    server = ReelcastServer(settings, host=host)
    await server.start()
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    bridge = asyncio.create_task(
        serve_bridge(server.target, "127.0.0.1:0", stop=stop, on_ready=ready.set_result, settings=settings)
    )
    port = await ready
    print(json.dumps({"grpc": server.target, "http": f"127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # runs until the parent closes stdin
    stop.set()
    await bridge
    await server.stop(grace=0.5)


class ServerHandle:
    """A bench server process; ``grpc`` and ``http`` are its addresses."""

    def __init__(
        self, data_dir: Path, *, ticks: int = 50, interval: float = 0.05, concurrency: int = 100
    ) -> None:
        command = [
            sys.executable,
            str(Path(__file__)),
            "serve",
            "--data-dir",
            str(data_dir),
            "--ticks",
            str(ticks),
            "--interval",
            str(interval),
            "--concurrency",
            str(concurrency),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        info = json.loads(self.process.stdout.readline())
        self.grpc: str = info["grpc"]
        self.http: str = info["http"]
        self.pid: int = info["pid"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


# -- client processes -------------------------------------------------------------------------------------


async def _sse_latencies(host: str, port: int, path: str, deadline: float) -> list[float]:
    """Opens one SSE connection and returns, for each progress event, now minus the report's timestamp."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    latencies: list[float] = []
    marker = b'"message":"t='
    try:
        while time.time() < deadline:
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.time()))
            if not line:
                break
            at = line.find(marker)
            if at >= 0:
                stamp = float(line[at + len(marker) : line.index(b'"', at + len(marker))])
                latencies.append(time.time() - stamp)
            elif b"job-completed" in line or b"job-failed" in line:
                break
    except TimeoutError:
        pass
    finally:
        writer.close()
    return latencies


async def _clients(args: argparse.Namespace) -> None:
    host, port = args.http.rsplit(":", 1)
    paths = [f"/api/jobs/{job_id}/events" for job_id in args.jobs.split(",")]
    deadline = time.time() + args.seconds
    tasks = [
        _sse_latencies(host, int(port), paths[index % len(paths)], deadline) for index in range(args.count)
    ]
    results = await asyncio.gather(*tasks)
    print(json.dumps([value for result in results for value in result]))


def run_clients(http: str, job_ids: list[str], count: int, processes: int, seconds: float) -> list[float]:
    """``count`` SSE subscribers over ``job_ids``, spread over ``processes`` client processes."""
    share = [count // processes + (1 if index < count % processes else 0) for index in range(processes)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                "clients",
                "--http",
                http,
                "--jobs",
                ",".join(job_ids),
                "--count",
                str(n),
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in share
        if n
    ]
    values: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        values.extend(json.loads(out))
    return values


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": float(len(values)),
        "mean_ms": statistics.fmean(values) * 1000 if values else float("nan"),
        "p50_ms": percentile(values, 0.5) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--data-dir", required=True)
    serve.add_argument("--ticks", type=int, default=50)
    serve.add_argument("--interval", type=float, default=0.05)
    serve.add_argument("--concurrency", type=int, default=100)
    clients = commands.add_parser("clients")
    clients.add_argument("--http", required=True)
    clients.add_argument("--jobs", required=True)
    clients.add_argument("--count", type=int, required=True)
    clients.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args) if args.command == "serve" else _clients(args))


if __name__ == "__main__":
    main()
