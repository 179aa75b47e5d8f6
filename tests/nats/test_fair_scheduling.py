"""Fair scheduling on both backends (SQLite and NATS JetStream, tests/nats/conftest.py), with a real
server and real users (API keys): the next free slot goes to the least-served user, priorities order one
user's jobs, and ``WorkQueue.waiting_order`` predicts the starts. When a job started is read from its event
log (its Running event), as any client would see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.storage.nats.backend import NatsBackend
from reelcast.server.storage.nats.layout import WORK_STREAM, WORK_SUBJECT, work_subject
from tests.security.conftest import HANG_TIMEOUT, bearer
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

LONG = "long"  # the brief topic of jobs that run until cancelled (PipelinePlugin.hang_topic)
USERS = ("alice", "bob", "carol", "dave")


@dataclass
class Deployment:
    server: ReelcastServer
    stub: JobServiceAsyncStub
    keys: dict[str, str]

    async def create(self, user: str, topic: str = "Otters", priority: int = 0) -> str:
        spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic), priority=priority)  # type: ignore[arg-type]
        reply = await self.stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=spec), metadata=bearer(self.keys[user])
        )
        return str(reply.job.id)

    async def cancel(self, user: str, job_id: str) -> None:
        await self.stub.CancelJob(
            job_service_pb2.CancelJobRequest(job_id=job_id), metadata=bearer(self.keys[user])
        )

    async def started_at(self, job_id: str) -> int | None:
        """The time (ns) of the job's first Running event, from its event log; None while it waits."""
        return (await self._log_of(job_id))[0]

    async def _log_of(self, job_id: str) -> tuple[int | None, int]:
        events = await self.server.store.events_after(job_id, 0, 10_000)
        for event in events:
            if event.kind == job_pb2.EVENT_KIND_JOB_STATUS and event.job_status == job_pb2.JOB_STATUS_RUNNING:
                return int(event.time.ToNanoseconds()), len(events)
        return None, len(events)

    async def wait_started(self, job_id: str) -> int:
        async def follow() -> int:
            while True:
                started, last_sequence = await self._log_of(job_id)
                if started is not None:
                    return started
                await self.server.notifier.wait_beyond(job_id, last_sequence, timeout=0.5)

        return await asyncio.wait_for(follow(), HANG_TIMEOUT)

    async def wait_ended(self, user: str, job_id: str) -> None:
        async def follow() -> None:
            request = job_service_pb2.WatchJobRequest(job_id=job_id)
            async for _ in self.stub.WatchJob(request, metadata=bearer(self.keys[user])):
                pass

        await asyncio.wait_for(follow(), HANG_TIMEOUT)


Start = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def start_fair(settings: Settings) -> AsyncIterator[Start]:
    """Starts a server with ``slots`` worker slots, authentication on and keys for USERS, running the test
    pipeline (short jobs; jobs about LONG run until cancelled)."""
    servers: list[ReelcastServer] = []
    channels: list[aio.Channel] = []

    async def start(slots: int, max_running_per_user: int = 0) -> Deployment:
        settings.auth_required = True
        settings.max_running_jobs_per_user = max_running_per_user
        settings.max_concurrent_jobs = slots
        settings.max_active_jobs_per_user = 40
        settings.job_create_burst = 40
        settings.job_create_rate_per_minute = 6000.0
        server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
        server.host.register(PipelinePlugin(delay=0.005, hang_topic=LONG), "pipeline")
        await server.start()
        servers.append(server)
        keys = {user: (await server.keys.acreate(user))[1] for user in USERS}
        channel = aio.insecure_channel(server.target)
        channels.append(channel)
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        return Deployment(server, stub, keys)

    try:
        yield start
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(grace=0.5)


async def test_alice_s_one_job_starts_at_the_next_free_slot_after_bob_queued_twenty_long_ones(
    start_fair: Start,
) -> None:
    fair = await start_fair(1)
    bobs = [await fair.create("bob", LONG) for _ in range(20)]
    await fair.wait_started(bobs[0])
    alices = await fair.create("alice")

    await fair.cancel("bob", bobs[0])  # the next free slot
    alice_started = await fair.wait_started(alices)
    await fair.wait_ended("alice", alices)
    second_bob = await fair.wait_started(bobs[1])  # bob's turn again once alice's job is done
    assert alice_started < second_bob
    assert [await fair.started_at(job) for job in bobs[2:]] == [None] * 18


async def test_three_users_with_ten_jobs_each_on_two_slots_never_differ_by_more_than_one_start(
    start_fair: Start,
) -> None:
    fair = await start_fair(2)
    blockers = [await fair.create("dave", LONG) for _ in range(2)]
    for blocker in blockers:
        await fair.wait_started(blocker)
    owners: dict[str, str] = {}
    for user in ("alice", "bob", "carol"):  # all of one user's, then the next: the worst order for FIFO
        for _ in range(10):
            owners[await fair.create(user)] = user
    for blocker in blockers:
        await fair.cancel("dave", blocker)
    for job_id, user in owners.items():
        await fair.wait_ended(user, job_id)

    starts = sorted([(await fair.wait_started(job_id), user) for job_id, user in owners.items()])
    counts = dict.fromkeys(("alice", "bob", "carol"), 0)
    for _, user in starts:
        counts[user] += 1
        assert max(counts.values()) - min(counts.values()) <= 1, (counts, [user for _, user in starts])


async def test_a_high_priority_job_starts_before_its_owner_s_normal_ones_and_low_after_them(
    start_fair: Start,
) -> None:
    fair = await start_fair(1)
    blocker = await fair.create("dave", LONG)
    await fair.wait_started(blocker)
    low = await fair.create("alice", priority=job_pb2.JOB_PRIORITY_LOW)
    normal = [await fair.create("alice") for _ in range(2)]
    high = await fair.create("alice", priority=job_pb2.JOB_PRIORITY_HIGH)
    await fair.cancel("dave", blocker)
    jobs = [low, *normal, high]
    for job_id in jobs:
        await fair.wait_ended("alice", job_id)

    started = {job_id: await fair.wait_started(job_id) for job_id in jobs}
    assert sorted(jobs, key=started.__getitem__) == [high, *normal, low]


async def test_waiting_order_puts_alice_s_one_job_before_bob_s_three_and_the_starts_follow_it(
    start_fair: Start,
) -> None:
    fair = await start_fair(1)
    running = await fair.create("bob", LONG)
    await fair.wait_started(running)
    bobs = [await fair.create("bob") for _ in range(3)]
    alices = await fair.create("alice")

    order = await fair.server.runner.queue.waiting_order(await fair.server.store.unfinished_jobs())
    # bob has had a start: alice, raised to bob's served count by virtual time, wins the tie (older start).
    assert order == [alices, *bobs]
    await fair.cancel("bob", running)
    owners = {alices: "alice"} | dict.fromkeys(bobs, "bob")
    for job_id, user in owners.items():
        await fair.wait_ended(user, job_id)
    started = {job_id: await fair.wait_started(job_id) for job_id in owners}
    assert sorted(owners, key=started.__getitem__) == order
    assert await fair.server.runner.queue.waiting_order(await fair.server.store.unfinished_jobs()) == []


async def test_a_user_at_the_running_cap_is_skipped_and_the_free_slot_goes_to_the_next_user(
    start_fair: Start,
) -> None:
    fair = await start_fair(2, max_running_per_user=1)
    bobs = [await fair.create("bob", LONG) for _ in range(3)]
    await fair.wait_started(bobs[0])
    alices = await fair.create("alice")
    await fair.wait_started(alices)
    await fair.wait_ended("alice", alices)
    # The second slot served alice and then stayed free: bob is at his cap of one running job.
    assert [await fair.started_at(job) for job in bobs[1:]] == [None, None]
    assert await fair.server.runner.queue.waiting_order(await fair.server.store.unfinished_jobs()) == bobs[1:]
    await fair.cancel("bob", bobs[0])
    await fair.wait_started(bobs[1])
    assert await fair.started_at(bobs[2]) is None


async def test_a_job_queued_on_the_layout_before_fair_scheduling_still_runs(
    start_fair: Start, backend_name: str
) -> None:
    if backend_name != "nats":
        pytest.skip("the old layout is the NATS work stream's single subject")
    old = await start_fair(1)
    await old.server.runner.stop()  # nobody takes it from the new subject meanwhile
    job_id = await old.create("alice")
    backend = old.server.backend
    assert isinstance(backend, NatsBackend)
    js = backend.connection.layout.js
    await js.purge_stream(WORK_STREAM, subject=work_subject("alice", "normal"))
    await js.publish(WORK_SUBJECT, job_id.encode())  # as a server of the earlier layout queued it

    upgraded = await start_fair(1)
    await upgraded.wait_ended("alice", job_id)
    job = await upgraded.server.store.latest_job(job_id)
    assert job is not None and job.status == job_pb2.JOB_STATUS_SUCCEEDED
