"""The baseline: an SSE bridge that polls ``GetJob`` the way the seed describes Aura's (every 1 s, or 500 ms
in Aura's code), diffs the state, and emits an event when it changed. Bench-only; never shipped.

Run: ``python bench/polling_bridge.py --grpc HOST:PORT --interval 1.0`` (prints its HTTP address).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator

import uvicorn
from grpc import aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_service_pb2, job_service_pb2_grpc


def build_app(grpc_target: str, interval: float) -> Starlette:
    channel = aio.insecure_channel(grpc_target)
    stub = job_service_pb2_grpc.JobServiceStub(channel)

    async def events(request: Request) -> StreamingResponse:
        job_id = request.path_params["job_id"]

        async def poll() -> AsyncIterator[bytes]:
            previous: tuple[object, ...] | None = None
            while True:
                job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
                step = next((s for s in job.steps if s.name == job.stage), None)
                state = (job.status, job.stage, job.percent, step.message if step else "")
                if state != previous and step is not None:
                    data = {"step": step.title, "progressPct": step.percent, "message": step.message}
                    payload = json.dumps(data, separators=(",", ":"))
                    yield f"event: step-progress\ndata: {payload}\n\n".encode()
                previous = state
                if job.status in TERMINAL_STATUSES:
                    yield b"event: job-completed\ndata: {}\n\n"
                    return
                await asyncio.sleep(interval)

        return StreamingResponse(poll(), media_type="text/event-stream")

    return Starlette(routes=[Route("/api/jobs/{job_id}/events", events)])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    config = uvicorn.Config(
        build_app(args.grpc, args.interval), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(json.dumps({"http": f"127.0.0.1:{port}"}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    server.should_exit = True
    await task


if __name__ == "__main__":
    asyncio.run(main())
