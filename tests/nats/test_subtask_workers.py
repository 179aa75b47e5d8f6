"""A stage's subtasks (``StageContext.run_subtask``) on the NATS work queue, with the sample third-party
plugin's stage: it runs four subtasks at once (a Python that sleeps, reads the stage's input file and writes
its part), on an API server and two workers. The parts come back in order from both workers, and the
subtasks take the user's fair turns: bob's job, queued while alice's subtasks wait, starts before the last
of them, as a job of his would before alice's next job (nats/work.py, storage/fairness.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, create_key, server, subtask_results, worker
from tests.processes import ALL_BUILTINS
from tests.security.conftest import HANG_TIMEOUT, bearer

PARTS = 4
PART_SECONDS = 1.5


async def test_subtasks_run_on_every_worker_in_the_users_fair_turns(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_AUTH": "required",
        "REELCAST_NATS_ACK_WAIT": "2",
        "REELCAST_SAMPLE_SUBTASKS": str(PARTS),
        "REELCAST_SAMPLE_SUBTASK_SECONDS": str(PART_SECONDS),
    }
    store = nats_server.url
    api = server(tmp_path, "server", store, env)
    workers = [worker(tmp_path, f"worker{index}", store, env) for index in range(2)]
    processes: list[ReelcastProcess] = [api, *workers]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        keys = {user: create_key(store, user, {**os.environ, **env}) for user in ("alice", "bob")}
        async with aio.insecure_channel(api.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)

            async def create(user: str) -> str:
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"{user}'s otters"))
                request = job_service_pb2.CreateJobRequest(spec=spec)
                return (await stub.CreateJob(request, metadata=bearer(keys[user]))).job.id

            async def follow(user: str, job_id: str, stamping: asyncio.Event | None = None) -> list[Any]:
                request = job_service_pb2.WatchJobRequest(job_id=job_id)
                events = []
                async for event in stub.WatchJob(request, metadata=bearer(keys[user]), timeout=HANG_TIMEOUT):
                    events.append(event)
                    if (
                        stamping is not None
                        and event.stage == "stamp"
                        and event.kind == (job_pb2.EVENT_KIND_STEP_STATUS)
                    ):
                        stamping.set()
                return events

            alice = await create("alice")
            stamping = asyncio.Event()
            alices = asyncio.create_task(follow("alice", alice, stamping))
            await asyncio.wait_for(stamping.wait(), HANG_TIMEOUT)
            await asyncio.sleep(0.5)  # her four subtasks are queued, and two of them run
            bob = await create("bob")
            bobs = await follow("bob", bob)
            alice_events = await alices

        for events in (alice_events, bobs):
            assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
        alice_parts = await subtask_results(store, alice)
        assert sorted(alice_parts) == [f"part-{number}" for number in range(PARTS)]
        assert all(result["returncode"] == 0 for result in alice_parts.values())
        # Both workers ran alice's parts: the one running her job, and the other one.
        pids = {str(process.process.pid) for process in workers if process.process is not None}
        assert {result["worker"].rpartition(":")[2] for result in alice_parts.values()} == pids
        # bob's job started before alice's last part: her waiting subtasks did not go before his job.
        bob_running = next(
            event.time.ToNanoseconds() / 1e9
            for event in bobs
            if event.kind == job_pb2.EVENT_KIND_JOB_STATUS and event.job_status == job_pb2.JOB_STATUS_RUNNING
        )
        last_part = max(result["started"] for result in alice_parts.values())
        assert bob_running < last_part, (bob_running, alice_parts)
        # The stage joined the parts in order, each copied from the stage's input by some worker.
        log = workers[0].log() + workers[1].log()
        assert log.count(f"of job {alice} (attempt") == PARTS
    finally:
        for process in processes:
            process.stop()
