"""Shared pieces of the benchmarks: the product as shipped, and SSE client processes beside it.

Servers are real ``reelcast serve`` / ``reelcast bridge`` processes (the CLI, with its defaults), running the
bench stage of bench/plugin, which pip installs into a temp dir as a third-party plugin is installed.
Clients run in other processes on raw asyncio sockets (``python bench/harness.py clients …`` for latency,
bench/frame_clients.py for fan-out and connections), so the harness never shares an event loop with the
server and is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# -- server process -------------------------------------------------------------------------------------

PLUGIN_SOURCE = ROOT / "bench" / "plugin"


def install_plugin(site: Path) -> Path:
    """Installs the bench stage (bench/plugin) into ``site`` with pip, as a third-party plugin is; server
    processes get ``site`` on their PYTHONPATH. Built from a copy, so no build/ lands in the source tree."""
    if list(site.glob("reelcast_bench_plugin-*.dist-info")):
        return site
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "plugin"
        shutil.copytree(PLUGIN_SOURCE, source)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        subprocess.run([*command, "--target", str(site), str(source)], check=True)
    return site


_SITE: Path | None = None


def plugin_site() -> Path:
    """One install of the bench plugin per bench process, in a temp dir removed at exit."""
    global _SITE
    if _SITE is None:
        scratch = tempfile.TemporaryDirectory(prefix="reelcast-bench-site-")
        atexit.register(scratch.cleanup)
        _SITE = install_plugin(Path(scratch.name))
    return _SITE


def product_env(stage: str, gate: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``reelcast`` process running the bench stage: no built-in stages, no
    authentication (loopback; measured is the event path), no coalescing of progress ticks."""
    from reelcast.plugins.host import BUILTIN_PLUGINS

    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(plugin_site()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        REELCAST_DISABLED_PLUGINS=",".join(name for name, _ in BUILTIN_PLUGINS),
        REELCAST_AUTH="off",
        REELCAST_PROGRESS_INTERVAL="0",
        REELCAST_RETENTION_SECONDS=str(10**9),
        REELCAST_BENCH_STAGE=stage,
        REELCAST_BENCH_GATE=str(gate or ""),
        **extra,
    )
    return env


class ProductProcess:
    """A real ``reelcast`` command (``serve`` or ``bridge``) as a child, started by the tests' launcher
    (tests/launcher.py); ``grpc`` and ``http`` are its addresses (``HOST:PORT``) once started, "" for what it
    does not serve, ``pid`` its process id."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        from tests.launcher import ReelcastProcess

        log_path.unlink(missing_ok=True)
        self.child = ReelcastProcess(args[0], args[1:], log_path, env, inherit_env=False)
        self.log_path = log_path
        try:
            self.child.start()
        except BaseException:
            self.close()
            raise
        assert self.child.process is not None
        self.process = self.child.process
        self.pid = self.process.pid
        self.grpc = self.child.target
        self.http = self.child.http_base.split("://", 1)[-1] if self.child.http_base else ""
        ready = self.child.ready
        # The processes that do the work: a supervised bridge's children, or this one.
        self.bridge_pids: list[int] = (
            list(ready.fields.get("processes") or [self.pid]) if ready else [self.pid]
        )

    def close(self) -> None:
        self.child.stop(timeout=30)


def serve(
    data_dir: Path,
    stage: str,
    *,
    gate: Path | None = None,
    concurrency: int = 100,
    bridge: bool = True,
    store: str = "",
    extra: dict[str, str] | None = None,
) -> ProductProcess:
    """``reelcast serve`` (gRPC, runner and, with ``bridge``, the web bridge in one process)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = ["serve", "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0"]
    args += ["--http-listen", "127.0.0.1:0"] if bridge else ["--no-bridge"]
    args += ["--max-concurrent-jobs", str(concurrency)]
    args += ["--store", store] if store else []
    env = product_env(stage, gate, **(extra or {}))
    return ProductProcess(args, env, data_dir.parent / f"{data_dir.name}-serve.log")


def bridge(grpc_target: str, log_path: Path, processes: int = 1) -> ProductProcess:
    """``reelcast bridge`` alone, in front of ``grpc_target``; with ``processes`` > 1, that many bridge
    processes on its port (bridge/processes.py), whose pids are ``bridge_pids``."""
    args = ["bridge", "--grpc-target", grpc_target, "--http-listen", "127.0.0.1:0"]
    args += ["--processes", str(processes)] if processes > 1 else []
    return ProductProcess(args, product_env("tick"), log_path)


class ServerHandle:
    """``reelcast serve`` with the ``tick`` stage (the latency bench's server)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        ticks: int = 50,
        interval: float = 0.05,
        concurrency: int = 100,
        gate: Path | None = None,
        phase: str = "random",
    ) -> None:
        extra = {
            "REELCAST_BENCH_TICKS": str(ticks),
            "REELCAST_BENCH_INTERVAL": str(interval),
            "REELCAST_BENCH_PHASE": phase,
        }
        self.product = serve(data_dir, "tick", gate=gate, concurrency=concurrency, extra=extra)
        self.grpc = self.product.grpc
        self.http = self.product.http
        self.pid = self.product.pid

    def close(self) -> None:
        self.product.close()


async def create_jobs(grpc_target: str, count: int, parallel: int = 16) -> list[str]:
    """Creates ``count`` jobs (``parallel`` calls at a time) and returns their ids in creation order."""
    from grpc import aio

    from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

    async with aio.insecure_channel(grpc_target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        ids: list[str] = [""] * count
        slots = asyncio.Semaphore(parallel)

        async def one(index: int) -> None:
            async with slots:
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"bench {index}"))
                response = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
                ids[index] = response.job.id

        await asyncio.gather(*(one(index) for index in range(count)))
        return ids


# -- process accounting -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The direct children of a process (nginx's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def sample_cpu(pids: list[int], start: float, end: float) -> float:
    """The CPU the processes ``pids`` used between the wall-clock times ``start`` and ``end``, as a share of
    one core."""
    await asyncio.sleep(max(0.0, start - time.time()))
    before = sum(cpu_seconds(pid) for pid in pids)
    await asyncio.sleep(max(0.0, end - time.time()))
    return (sum(cpu_seconds(pid) for pid in pids) - before) / (end - start)


def raise_nofile() -> int:
    """Raises this process's soft open-files limit to the hard one (children inherit it); returns it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A free port for a server that needs an explicit one (nginx), chosen as for nats-server."""
    from tests.nats.natsproc import free_port as below_ephemeral_range

    return below_ephemeral_range()


# -- client processes -------------------------------------------------------------------------------------


async def _sse_latencies(
    host: str, port: int, path: str, deadline: float, connected: asyncio.Event
) -> list[float]:
    """Opens one SSE connection and returns, for each progress event reported after the request was sent,
    now minus the report's timestamp. Events reported before are history that the stream replays on connect
    (no ``Last-Event-ID``): their age measures when the client arrived, not how fast a report is delivered,
    so they are left out (for push and the polling baselines alike). Sets ``connected`` at the first frame
    (or when the connection fails), when the subscription is known to be live."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        connected.set()
        return []
    requested_at = time.time()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    latencies: list[float] = []
    marker = b'"message":"t='
    try:
        while time.time() < deadline:
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.time()))
            if not line:
                break
            if line.startswith(b"event:"):
                connected.set()
            at = line.find(marker)
            if at >= 0:
                stamp = float(line[at + len(marker) : line.index(b'"', at + len(marker))])
                if stamp >= requested_at:
                    latencies.append(time.time() - stamp)
            elif b"job-completed" in line or b"job-failed" in line:
                break
    except (TimeoutError, OSError):
        pass
    finally:
        connected.set()
        writer.close()
    return latencies


async def _clients(args: argparse.Namespace) -> None:
    """The client process: its subscribers connect, it prints ``{"ready": N}`` once every one of them has
    its first frame, then the latencies of all of them as one JSON list when their jobs end."""
    host, port = args.http.rsplit(":", 1)
    paths = [f"/api/jobs/{job_id}/events" for job_id in args.jobs.split(",")]
    deadline = time.time() + args.seconds
    connected = [asyncio.Event() for _ in range(args.count)]
    tasks = [
        asyncio.ensure_future(
            _sse_latencies(host, int(port), paths[index % len(paths)], deadline, connected[index])
        )
        for index in range(args.count)
    ]
    await asyncio.gather(*(event.wait() for event in connected))
    print(json.dumps({"ready": args.count}), flush=True)
    results = await asyncio.gather(*tasks)
    print(json.dumps([value for result in results for value in result]), flush=True)


def run_clients(
    http: str, job_ids: list[str], count: int, processes: int, seconds: float, gate: Path | None = None
) -> tuple[list[float], float]:
    """``count`` SSE subscribers over ``job_ids``, spread over ``processes`` client processes. Once every
    subscriber has its first frame, creates the file ``go`` in ``gate`` (the tick stage's start signal).
    Returns the latencies, and the seconds it took until all subscribers were connected."""
    started = time.monotonic()
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
    for child in children:
        assert child.stdout is not None
        if "ready" not in json.loads(child.stdout.readline() or "{}"):
            raise RuntimeError("a latency client process ended before its subscribers connected")
    connect_seconds = time.monotonic() - started
    if gate is not None:
        (gate / "go").touch()
    values: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        values.extend(json.loads(out))
    return values, connect_seconds


class ClientFleet:
    """``count`` frame-counting SSE subscribers (bench/frame_clients.py) spread over ``processes`` client
    processes, connected to ``http`` (HOST:PORT) on ``paths``."""

    def __init__(
        self, http: str, paths: list[str], count: int, processes: int, marker: str = "event: step-progress"
    ) -> None:
        host, port = http.rsplit(":", 1)
        share = [count // processes + (1 if index < count % processes else 0) for index in range(processes)]
        self.children = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "frame_clients.py"),
                    *("--host", host, "--port", port, "--paths", ",".join(paths)),
                    *("--count", str(n), "--marker", marker),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in share
            if n
        ]
        self.ready = 0
        self.failed = 0
        self.statuses: set[int] = set()  # HTTP statuses seen (0: no response)
        self._window = (0.0, 0.0)
        for child in self.children:
            answer = self._answer(child)
            self.ready += answer["ready"]
            self.failed += answer["failed"]
            self.statuses.update(answer["status"])

    @staticmethod
    def _answer(child: subprocess.Popen[str]) -> dict[str, Any]:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("a client process ended without answering")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _say(self, words: str) -> None:
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(words + "\n")
            child.stdin.flush()

    def open_connections(self) -> int:
        self._say("status")
        return sum(self._answer(child)["open"] for child in self.children)

    def start_window(self, start: float, end: float) -> None:
        """Counts frames between the wall-clock times ``start`` and ``end`` (see :meth:`results`)."""
        self._say(f"window {start} {end}")
        self._window = (start, end)

    def results(self) -> dict[str, float]:
        """The window's counts summed over the processes; ``cpu_max`` is the busiest client process's share
        of one core in the window, ``cpu_total`` all of theirs. Closes the clients."""
        start, end = self._window
        answers = [self._answer(child) for child in self.children]
        self.close()
        return {
            "frames": sum(a["frames"] for a in answers),
            "bytes": sum(a["bytes"] for a in answers),
            "open": sum(a["open"] for a in answers),
            "cpu_max": max(a["cpu"] for a in answers) / (end - start),
            "cpu_total": sum(a["cpu"] for a in answers) / (end - start),
        }

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                assert child.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=30)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), imported only by a section that plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def stdin_held_server(*module_args: str) -> Iterator[dict[str, Any]]:
    """Runs ``python -m MODULE ARGS...``, a bench server that prints one JSON line (where it listens, its
    pid) and serves until its stdin closes; yields that line."""
    process = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def save_figure(figure: Any, path: Path) -> None:
    """Writes a section's plot (the same size and resolution for every section) and frees it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section_main(doc: str, run: Any, summary: Any) -> None:
    """The command line of a section module: ``--quick`` for smoke scale; prints its results as JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke scale: seconds, asserts nothing timed")
    args = parser.parse_args()
    results = run(args.quick)
    print(json.dumps({"summary": summary(results), **results}, indent=2))


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
    clients = commands.add_parser("clients")
    clients.add_argument("--http", required=True)
    clients.add_argument("--jobs", required=True)
    clients.add_argument("--count", type=int, required=True)
    clients.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(_clients(args))


if __name__ == "__main__":
    main()
