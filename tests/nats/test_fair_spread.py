"""Fair scheduling across processes: 2 API servers and 3 workers on one NATS JetStream, no dispatcher. Three
users' jobs start in turns whichever server queued them and whichever worker claims them, and a worker
SIGKILLed mid-job loses no fairness state: its job is redelivered without a new turn, and the shares in the
state bucket count exactly one start per job. bob's 20 queued jobs do not hold alice's one back, and his
high-priority job goes before his others."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import nats
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.storage.nats.layout import FAIRNESS_KEY, STATE_BUCKET
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, create_key, server, worker
from tests.processes import ALL_BUILTINS
from tests.security.conftest import HANG_TIMEOUT, bearer

USERS = ("alice", "bob", "carol")
JOBS_PER_USER = 5


async def first_running_and_end(channel: aio.Channel, key: str, job_id: str) -> tuple[int, int]:
    """Follows the job to its end: the time (ns) of its first Running event and its terminal event kind."""
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    started, kind = 0, 0
    async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), metadata=bearer(key)):
        running = (
            event.kind == job_pb2.EVENT_KIND_JOB_STATUS and event.job_status == job_pb2.JOB_STATUS_RUNNING
        )
        if running and not started:
            started = event.time.ToNanoseconds()
        kind = event.kind
    return started, kind


async def test_three_workers_and_two_servers_start_users_in_turns_and_a_killed_worker_loses_no_share(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.2",
        "REELCAST_AUTH": "required",
        "REELCAST_NATS_ACK_WAIT": "2",
        "REELCAST_JOB_CREATE_BURST": "40",
        "REELCAST_MAX_ACTIVE_JOBS_PER_USER": "40",
    }
    store = nats_server.url
    servers = [server(tmp_path, f"server{index}", store, env) for index in range(2)]
    workers = [worker(tmp_path, f"worker{index}", store, env) for index in range(3)]
    processes: list[ReelcastProcess] = list(servers)
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in servers))
        keys = {user: create_key(store, user, {**os.environ, **env}) for user in USERS}
        channels = [aio.insecure_channel(each.address) for each in servers]
        owners: dict[str, tuple[str, int]] = {}
        for user_index, user in enumerate(USERS):  # all of one user's, then the next: the worst for FIFO
            for index in range(JOBS_PER_USER):
                through = (user_index + index) % 2
                stub = job_service_pb2_grpc.JobServiceStub(channels[through])
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"{user} {index}"))
                reply = await stub.CreateJob(
                    job_service_pb2.CreateJobRequest(spec=spec), metadata=bearer(keys[user])
                )
                owners[reply.job.id] = (user, through)
        # The workers start once every job waits, so that each start is the policy's choice.
        processes += workers
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in workers))
        follows = {
            job_id: asyncio.ensure_future(first_running_and_end(channels[through], keys[user], job_id))
            for job_id, (user, through) in owners.items()
        }

        async def a_worker_mid_job() -> ReelcastProcess:
            while True:
                for each in workers:
                    log = each.log()
                    claimed = re.findall(r"job (\w+) claimed", log)
                    if len(claimed) >= 2 and f"job {claimed[-1]} ended" not in log:
                        return each
                await asyncio.sleep(0.05)

        victim = await asyncio.wait_for(a_worker_mid_job(), HANG_TIMEOUT)
        victim.kill()
        results = await asyncio.wait_for(asyncio.gather(*follows.values()), 120)

        assert all(kind == job_pb2.EVENT_KIND_JOB_COMPLETED for _, kind in results)
        starts = sorted(
            (started, owners[job_id][0]) for job_id, (started, _) in zip(follows, results, strict=True)
        )
        counts = dict.fromkeys(USERS, 0)
        for _, user in starts:
            counts[user] += 1
            assert max(counts.values()) - min(counts.values()) <= 1, [user for _, user in starts]
        assert any("redelivered: True" in each.log() for each in workers if each is not victim)

        client = await nats.connect(store)
        try:
            entry = await (await client.jetstream().key_value(STATE_BUCKET)).get(FAIRNESS_KEY)
            shares = json.loads(entry.value or b"{}")
        finally:
            await client.close()
        # One start per job, none lost with the killed worker and none added by its redelivery.
        assert shares["served"] == dict.fromkeys(USERS, float(JOBS_PER_USER))
        for channel in channels:
            await channel.close()
    finally:
        for process in processes:
            process.stop()


async def test_with_three_workers_and_two_servers_alice_s_one_job_and_bob_s_high_one_go_first(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    """bob queues 20 jobs, then alice one and bob a high-priority one, through both API servers: of the first
    starts the 3 workers make, one is alice's (the next free slot goes to the user served least), and bob's
    high-priority job is his first to start."""
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.05",
        "REELCAST_AUTH": "required",
        "REELCAST_JOB_CREATE_BURST": "40",
        "REELCAST_MAX_ACTIVE_JOBS_PER_USER": "40",
    }
    store = nats_server.url
    servers = [server(tmp_path, f"server{index}", store, env) for index in range(2)]
    workers = [worker(tmp_path, f"worker{index}", store, env) for index in range(3)]
    processes: list[ReelcastProcess] = list(servers)
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in servers))
        keys = {user: create_key(store, user, {**os.environ, **env}) for user in ("alice", "bob")}
        channels = [aio.insecure_channel(each.address) for each in servers]
        owners: dict[str, tuple[str, int]] = {}

        async def create(user: str, index: int, priority: int = job_pb2.JOB_PRIORITY_UNSPECIFIED) -> str:
            through = index % 2
            stub = job_service_pb2_grpc.JobServiceStub(channels[through])
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"{user} {index}"), priority=priority)  # type: ignore[arg-type]
            reply = await stub.CreateJob(
                job_service_pb2.CreateJobRequest(spec=spec), metadata=bearer(keys[user])
            )
            owners[reply.job.id] = (user, through)
            return reply.job.id

        for index in range(20):
            await create("bob", index)
        alices = await create("alice", 0)
        bobs_high = await create("bob", 21, job_pb2.JOB_PRIORITY_HIGH)
        processes += workers
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in workers))
        follows = {
            job_id: asyncio.ensure_future(first_running_and_end(channels[through], keys[user], job_id))
            for job_id, (user, through) in owners.items()
        }
        results = await asyncio.wait_for(asyncio.gather(*follows.values()), 120)

        assert all(kind == job_pb2.EVENT_KIND_JOB_COMPLETED for _, kind in results)
        order = [
            job_id
            for _, job_id in sorted(
                (started, job_id) for job_id, (started, _) in zip(follows, results, strict=True)
            )
        ]
        assert alices in order[: len(workers)], order.index(alices)
        # The first batch (one job per worker: alice's, and two of bob's) is claimed at once, and its jobs go
        # Running within milliseconds of each other on different workers, in any order: bob's high one must
        # be in that batch, ahead of his 20 others, not necessarily the first of his to say Running.
        bobs = [job_id for job_id in order if owners[job_id][0] == "bob"]
        assert bobs_high in bobs[: len(workers) - 1], bobs.index(bobs_high)
        for channel in channels:
            await channel.close()
    finally:
        for process in processes:
            process.stop()
