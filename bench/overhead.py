"""Job overhead: null-stage jobs per second, created to completed, through gRPC, on SQLite and on NATS
JetStream (a real nats-server), beside a bare grpc.aio unary echo server in the same run as the baseline.

Client processes keep ``concurrency`` ``CreateJob`` calls each in flight, back to back, so the queue
never runs dry; the server runs the jobs (one stage that returns at once). Counted are the jobs whose
``finish_time`` falls in a measuring window after a warm-up, read back with ``ListJobs``; their
created-to-completed time is the server's own ``finish_time - create_time`` (it includes time queued behind
the others). Completion is read from the server's timestamps rather than from ``WatchJob`` so that the
job engine, not the watch path, is what is measured. The echo baseline runs the same loops with a trivial
unary call, so the ratio reads "a whole job costs as much as 1/x trivial RPCs on this stack".

Run alone: ``python -m bench.overhead [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from bench.harness import ROOT, percentile, pyplot, sample_cpu, save_figure, serve, stdin_held_server
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

BACKENDS = ("sqlite", "nats", "echo")
LABELS = {
    "sqlite": "reelcast, SQLite",
    "nats": "reelcast, NATS JetStream",
    "echo": "bare grpc.aio unary echo",
}
ECHO_METHOD = "/bench.Echo/Echo"


@dataclass
class Scale:
    concurrency: int  # loops per client process
    client_processes: int
    max_concurrent_jobs: int
    warmup: float
    seconds: float
    rounds: int


FULL = Scale(concurrency=16, client_processes=2, max_concurrent_jobs=32, warmup=1.0, seconds=4.0, rounds=3)
QUICK = Scale(concurrency=2, client_processes=1, max_concurrent_jobs=4, warmup=0.3, seconds=0.7, rounds=1)


# -- load (runs in client processes) -------------------------------------------------------------------


async def _create_loop(stub: JobServiceAsyncStub, end: float, done: list[float]) -> None:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="null job"))
    while time.time() < end:
        await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
        done.append(time.time())


async def _echo_loop(channel: aio.Channel, end: float, done: list[float]) -> None:
    call: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ECHO_METHOD)
    # The bytes of the CreateJobRequest above, so that both move the same payload.
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="null job"))
    body = job_service_pb2.CreateJobRequest(spec=spec).SerializeToString()
    while time.time() < end:
        await call(body)
        done.append(time.time())


async def _load(target: str, mode: str, concurrency: int, start: float, end: float) -> dict[str, Any]:
    """``concurrency`` loops of back-to-back calls (``CreateJob``, or the echo) from ``start`` minus the
    warm-up until ``end``; returns the calls answered inside the window and this process's CPU there."""
    done: list[float] = []
    cpu = 0.0
    async with aio.insecure_channel(target) as channel:
        await channel.channel_ready()

        async def measure_cpu() -> None:
            nonlocal cpu
            await asyncio.sleep(max(0.0, start - time.time()))
            before = _cpu()
            await asyncio.sleep(max(0.0, end - time.time()))
            cpu = (_cpu() - before) / (end - start)

        stub = job_service_pb2_grpc.JobServiceStub(channel)
        loops = [
            _echo_loop(channel, end, done) if mode == "echo" else _create_loop(stub, end, done)
            for _ in range(concurrency)
        ]
        await asyncio.gather(measure_cpu(), *loops)
    return {"answered": sum(1 for t in done if start <= t < end), "cpu": cpu}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- echo server (its own process) ---------------------------------------------------------------------


async def _echo_server() -> None:
    server = aio.server()

    async def echo(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"grpc": f"127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await server.stop(0)


# -- orchestration ---------------------------------------------------------------------------------------


def _drive(target: str, mode: str, scale: Scale, pids: list[int]) -> dict[str, Any]:
    start = time.time() + scale.warmup + 1.0  # a second for the client processes to start and connect
    end = start + scale.seconds
    command = [sys.executable, "-m", "bench.overhead", "load", "--target", target, "--mode", mode]
    command += ["--concurrency", str(scale.concurrency), "--start", str(start), "--end", str(end)]
    clients = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(scale.client_processes)
    ]
    server_cpu = asyncio.run(sample_cpu(pids, start, end))
    answers = [json.loads(client.communicate(timeout=scale.seconds + 120)[0]) for client in clients]
    answered = sum(answer["answered"] for answer in answers)
    result = {
        "backend": mode,
        "answered": answered,
        "server_cpu": server_cpu,
        "client_cpu_max": max(answer["cpu"] for answer in answers),
    }
    if mode == "echo":
        result.update(completed=answered, p50_ms=float("nan"), p99_ms=float("nan"))
    else:
        durations = asyncio.run(_completed_between(target, start, end))
        result.update(
            completed=len(durations),
            p50_ms=percentile(durations, 0.5) * 1000,
            p99_ms=percentile(durations, 0.99) * 1000,
        )
    result["per_s"] = result["completed"] / scale.seconds
    return result


def _seconds(stamp: Any) -> float:
    return float(stamp.seconds + stamp.nanos / 1e9)


async def _completed_between(target: str, start: float, end: float) -> list[float]:
    """Created-to-completed times, from the server's own timestamps, of the jobs that ended in the window."""
    durations: list[float] = []
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        token = ""
        while True:
            request = job_service_pb2.ListJobsRequest(
                page_size=1000, page_token=token, statuses=[job_pb2.JOB_STATUS_SUCCEEDED]
            )
            page = await stub.ListJobs(request)
            for job in page.jobs:
                ended = _seconds(job.finish_time)
                if start <= ended < end:
                    durations.append(ended - _seconds(job.create_time))
            token = page.next_page_token
            if not token:
                return durations


async def _any_job_succeeds(target: str, seconds: float = 60.0) -> bool:
    """Whether any job succeeds within ``seconds`` (the smoke run's check that jobs flow at all, whatever
    the window happened to catch on a loaded machine)."""
    deadline = time.monotonic() + seconds
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        request = job_service_pb2.ListJobsRequest(page_size=1, statuses=[job_pb2.JOB_STATUS_SUCCEEDED])
        while time.monotonic() < deadline:
            if (await stub.ListJobs(request)).jobs:
                return True
            await asyncio.sleep(0.2)
    return False


def run_reelcast(backend: str, scale: Scale, scratch: Path) -> dict[str, Any]:
    nats_node = None
    store = ""
    if backend == "nats":
        from tests.nats.natsproc import NatsServer

        nats_node = NatsServer(scratch / "nats")
        nats_node.start()
        store = nats_node.url
    try:
        server = serve(
            scratch / "data", "null", bridge=False, concurrency=scale.max_concurrent_jobs, store=store
        )
        try:
            pids = [server.pid] + ([nats_node.process.pid] if nats_node and nats_node.process else [])
            result = _drive(server.grpc, backend, scale, pids)
            result["flows"] = asyncio.run(_any_job_succeeds(server.grpc))
        finally:
            server.close()
    finally:
        if nats_node is not None:
            nats_node.stop()
    return result


def run_echo(scale: Scale) -> dict[str, Any]:
    with stdin_held_server("bench.overhead", "echo-server") as info:
        return _drive(info["grpc"], "echo", scale, [info["pid"]])


def run(quick: bool = False) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    runs = []
    for round_index in range(scale.rounds):
        order = BACKENDS[round_index % 3 :] + BACKENDS[: round_index % 3]
        for backend in order:
            with tempfile.TemporaryDirectory(prefix=f"reelcast-bench-overhead-{backend}-") as scratch:
                result = run_echo(scale) if backend == "echo" else run_reelcast(backend, scale, Path(scratch))
            result["round"] = round_index
            print(json.dumps(result), file=sys.stderr, flush=True)
            runs.append(result)
    for result in runs:
        # The smoke run checks that jobs flow, not how many fit in its short window; at full scale a backend
        # that completes nothing in the window is a measurement (shown as 0), not a harness failure.
        if quick and not result.get("flows", True):
            raise RuntimeError(f"no job succeeded: {result}")
    from tests.nats.natsproc import nats_server_binary

    version = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True, check=False)
    return {"scale": scale.__dict__, "nats_server": version.stdout.strip(), "runs": runs}


def _values(results: dict[str, Any], backend: str, key: str) -> list[float]:
    return [r[key] for r in results["runs"] if r["backend"] == backend]


def _ratios(results: dict[str, Any], backend: str) -> list[float]:
    per_round: dict[int, dict[str, float]] = {}
    for result in results["runs"]:
        per_round.setdefault(result["round"], {})[result["backend"]] = result["per_s"]
    return [r[backend] / r["echo"] for r in per_round.values() if r.get("echo")]


def summary(results: dict[str, Any]) -> dict[str, float]:
    return {f"{b}_median": statistics.median(_values(results, b, "per_s")) for b in BACKENDS}


def section(results: dict[str, Any], plot_path: str) -> str:
    scale = results["scale"]
    loops = scale["concurrency"] * scale["client_processes"]
    lines = [
        "## Job overhead",
        "",
        f"Null-stage jobs per second, created to completed through gRPC: {loops} `CreateJob` calls kept in "
        f"flight by {scale['client_processes']} client processes against `reelcast serve --no-bridge "
        f"--max-concurrent-jobs {scale['max_concurrent_jobs']}` with one stage that returns at once; counted "
        "are the jobs whose server-side `finish_time` falls in a "
        f"{scale['seconds']:.0f} s window after a {scale['warmup']:.0f} s warm-up; {scale['rounds']} rounds "
        "in rotated order. Baseline: the same loops of calls against a bare grpc.aio unary echo server. "
        f"NATS: {results['nats_server']}, one node, on loopback.",
        "",
        "| server | per s median | min–max | p50 ms | p99 ms | server CPU | busiest client CPU "
        "| ÷ echo calls/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in BACKENDS:
        rates = _values(results, backend, "per_s")
        ratios = _ratios(results, backend) if backend != "echo" else []
        lines.append(
            f"| {LABELS[backend]} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {statistics.median(_values(results, backend, 'p50_ms')):.1f} "
            f"| {statistics.median(_values(results, backend, 'p99_ms')):.1f} "
            f"| {statistics.median(_values(results, backend, 'server_cpu')):.0%} "
            f"| {max(_values(results, backend, 'client_cpu_max')):.0%} "
            f"| {f'{statistics.median(ratios):.3f}' if ratios else ''} |"
        )
    lines += [
        "",
        "p50 and p99 are of the server's created-to-completed time of the jobs counted (time queued "
        "included, so they grow with the backlog the loops build), medians over rounds. Server CPU includes "
        "nats-server's on NATS; CPU is a share of one core.",
        "",
        f"![Job overhead]({plot_path})",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    figure, axes = plt.subplots(figsize=(7, 3.5))
    medians = [statistics.median(_values(results, b, "per_s")) for b in BACKENDS]
    axes.bar([LABELS[b] for b in BACKENDS], medians, color=["#d62728", "#ff7f0e", "#1f77b4"])
    for index, backend in enumerate(BACKENDS):
        dots = _values(results, backend, "per_s")
        axes.scatter([index] * len(dots), dots, color="black", s=10, zorder=3)
    axes.axhline(500, linestyle="--", color="#2ca02c", label="target: 500 null jobs/s on SQLite")
    axes.set_yscale("log")
    axes.set_ylabel("jobs (or echo calls) per second")
    axes.set_title("Null jobs created to completed (bars: median; dots: rounds)")
    axes.legend(loc="upper left", fontsize=8)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    load = commands.add_parser("load")
    load.add_argument("--target", required=True)
    load.add_argument("--mode", choices=BACKENDS, required=True)
    load.add_argument("--concurrency", type=int, required=True)
    load.add_argument("--start", type=float, required=True)
    load.add_argument("--end", type=float, required=True)
    commands.add_parser("echo-server")
    parser.add_argument("--quick", action="store_true", help="smoke scale: seconds, asserts nothing timed")
    args = parser.parse_args()
    if args.command == "load":
        result = asyncio.run(_load(args.target, args.mode, args.concurrency, args.start, args.end))
        print(json.dumps(result))
    elif args.command == "echo-server":
        asyncio.run(_echo_server())
    else:
        results = run(args.quick)
        print(json.dumps({"summary": summary(results), **results}, indent=2))


if __name__ == "__main__":
    main()
