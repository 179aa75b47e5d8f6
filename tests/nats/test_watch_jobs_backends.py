"""WatchJobs on both backends (SQLite and NATS JetStream, tests/nats/conftest.py): one stream of all of a
user's jobs, including jobs created after it opened, resumable from any cursor with no gap and no duplicate,
with a resync after retention forgot the cursor's past, filters, deletions, and other users kept out (with a
cursor taken from their stream too)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.terminal import is_terminal
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.app import ReelcastServer
from reelcast.server.storage.retention import collect_garbage
from tests.bridge.conftest import HANG_TIMEOUT
from tests.security.conftest import bearer, start_secured  # noqa: F401  (the fixture, for the owner test)
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub
    from tests.nats.natsproc import NatsServer
    from tests.security.conftest import SecuredFactory

Response = job_service_pb2.WatchJobsResponse


class Feed:
    """One open WatchJobs call, read one response at a time with a hang timeout."""

    def __init__(self, stub: Stub, metadata: tuple[tuple[str, str], ...] = (), **request: object) -> None:
        self.call = stub.WatchJobs(job_service_pb2.WatchJobsRequest(**request), metadata=metadata)  # type: ignore[arg-type]
        self._responses = self.call.__aiter__()

    async def next(self) -> Response:
        response: Response = await asyncio.wait_for(self._responses.__anext__(), HANG_TIMEOUT)
        return response

    async def opened(self) -> str:
        """The first response: no event, the cursor the stream starts from."""
        first = await self.next()
        assert not first.HasField("event")
        return first.cursor

    async def until(self, done: object) -> list[Response]:
        """Responses until ``done(responses)`` holds."""
        seen: list[Response] = []
        while not done(seen):  # type: ignore[operator]
            seen.append(await self.next())
        return seen

    def close(self) -> None:
        self.call.cancel()


def terminal_of(*job_ids: str) -> object:
    return lambda seen: {r.event.job_id for r in seen if is_terminal(r.event)} >= set(job_ids)


async def create(
    stub: Stub, topic: str = "x", metadata: tuple[tuple[str, str], ...] = (), **labels: str
) -> str:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic), labels=labels)
    reply = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), metadata=metadata)
    return reply.job.id


async def job_log(stub: Stub, job_id: str) -> list[job_pb2.JobProgress]:
    call = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))
    return await asyncio.wait_for(_all(call), HANG_TIMEOUT)


async def _all(call: object) -> list[job_pb2.JobProgress]:
    return [event async for event in call]  # type: ignore[attr-defined]


async def test_a_job_created_after_the_stream_opened_streams_from_its_creation(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    before = await create(stub)
    await job_log(stub, before)  # finished before the stream opens: none of its events come
    feed = Feed(stub)
    await feed.opened()
    job_id = await create(stub)
    responses = await feed.until(terminal_of(job_id))
    feed.close()
    events = [r.event for r in responses]
    assert {e.job_id for e in events} == {job_id}
    assert events[0].sequence == 1 and events[0].job_status == job_pb2.JOB_STATUS_QUEUED  # its creation
    assert events == await job_log(stub, job_id)  # every event, as WatchJob sends them
    assert len({r.cursor for r in responses}) == len(responses)


async def test_resuming_at_20_random_cuts_sends_the_rest_exactly(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(delay=0.002), "pipeline")
    feed = Feed(stub)
    start = await feed.opened()
    job_ids = await asyncio.gather(*(create(stub, f"topic {n}") for n in range(3)))  # their events interleave
    full = await feed.until(terminal_of(*job_ids))
    feed.close()
    assert len({e.event.job_id for e in full[:10]}) > 1 or len(full) > 20
    cuts = sorted(random.Random(18).sample(range(len(full)), 20))
    for cut in [-1, *cuts]:
        cursor = start if cut < 0 else full[cut].cursor
        resumed = Feed(stub, cursor=cursor)
        assert await resumed.opened() == cursor
        rest = [await resumed.next() for _ in full[cut + 1 :]]
        resumed.close()
        assert full[: cut + 1] + rest == full, f"cut after {cut}"


async def test_a_label_or_status_filter_passes_only_matching_events(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    labelled = Feed(stub, label_selector="team=video")
    finished = Feed(stub, statuses=[job_pb2.JOB_STATUS_SUCCEEDED])
    await labelled.opened()
    await finished.opened()
    other = await create(stub, team="audio")
    unlabelled = await create(stub)
    wanted = await create(stub, team="video", env="prod")
    responses = await labelled.until(terminal_of(wanted))
    assert {r.event.job_id for r in responses} == {wanted}
    assert [r.event for r in responses] == await job_log(stub, wanted)
    completions = await finished.until(terminal_of(other, unlabelled, wanted))
    assert [r.event.kind for r in completions] == [job_pb2.EVENT_KIND_JOB_COMPLETED] * 3
    labelled.close()
    finished.close()


async def test_a_deleted_job_leaves_the_stream_with_the_deletion_event(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    feed = Feed(stub)
    start = await feed.opened()
    job_id = await create(stub)
    events = [r.event for r in await feed.until(terminal_of(job_id))]
    await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job_id))
    deleted = (await feed.next()).event
    feed.close()
    assert (deleted.job_id, deleted.kind) == (job_id, job_pb2.EVENT_KIND_JOB_DELETED)
    assert deleted.sequence == events[-1].sequence + 1
    # Resumed from before the job existed, its events are gone and its deletion is what is left of it.
    resumed = Feed(stub, cursor=start)
    await resumed.opened()
    again = (await resumed.next()).event
    resumed.close()
    assert (again.job_id, again.kind, again.sequence) == (
        job_id,
        job_pb2.EVENT_KIND_JOB_DELETED,
        deleted.sequence,
    )


async def test_a_cursor_older_than_the_retained_history_gets_a_resync_then_live(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    feed = Feed(stub)
    stale = await feed.opened()
    feed.close()
    waiting = await create(stub)  # hangs in visuals: retention never touches an unfinished job
    gone = await create(stub)
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=gone))
    await job_log(stub, gone)
    # A retention pass as if a retention period had gone by: it deletes the cancelled job, then forgets its
    # deletion record too, so the stale cursor's past is no longer kept.
    retention = server.settings.retention_seconds
    later = time.time() + retention + 60
    assert await collect_garbage(server.settings, server.backend.store, now=later) == [gone]

    resumed = Feed(stub, cursor=stale)
    assert await resumed.opened() == stale
    resync = await resumed.next()
    assert resync.event.kind == job_pb2.EVENT_KIND_RESYNC
    assert resync.event.snapshot.id == waiting and resync.event.job_id == waiting
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=waiting))
    live = await resumed.until(terminal_of(waiting))
    resumed.close()
    assert {r.event.job_id for r in live} == {waiting}
    first = resync.event.snapshot.last_sequence + 1  # what the snapshot holds is not sent again
    assert [r.event.sequence for r in live] == list(range(first, first + len(live)))
    assert live[-1].event.job_status == job_pb2.JOB_STATUS_CANCELLED


async def test_a_malformed_or_future_cursor_is_refused_with_its_catalogue_code(
    server: ReelcastServer, stub: Stub
) -> None:
    for cursor in ("junk", "w1" + "_" * 11, "w1AAAAAAAAAAA"[:-1] + "z"):
        feed = Feed(stub, cursor=cursor)
        with pytest.raises(aio.AioRpcError) as raised:
            await feed.next()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, cursor
        decoded = decode_rpc_error(raised.value)
        assert decoded.code == "E017-INVALID_WATCH_CURSOR" and decoded.correlation_id


async def test_another_users_jobs_never_appear_even_with_a_spliced_cursor(
    start_secured: SecuredFactory,  # noqa: F811
    backend_name: str,
    request: pytest.FixtureRequest,
) -> None:
    overrides = {}
    if backend_name == "nats":
        node: NatsServer = request.getfixturevalue("nats_server")
        overrides["store_url"] = node.url
    secured = await start_secured(**overrides)
    stub, keys = secured.stub, secured.keys
    alice, bob, root = bearer(keys["alice"]), bearer(keys["bob"]), bearer(keys["root"])
    bobs_feed = Feed(stub, bob)
    bobs_start = await bobs_feed.opened()
    bobs_feed.close()
    alices_feed = Feed(stub, alice)
    await alices_feed.opened()
    bobs_job = await create(stub, "bob's", bob)
    alices_job = await create(stub, "alice's", alice)
    seen = await alices_feed.until(terminal_of(alices_job))
    alices_feed.close()
    assert {r.event.job_id for r in seen} == {alices_job}
    # bob's cursor, and one edited to the very start, on alice's stream: still only alice's job.
    for cursor in (bobs_start, "w1AAAAAAAAAAA"):
        spliced = Feed(stub, alice, cursor=cursor)
        await spliced.opened()
        replay = await spliced.until(terminal_of(alices_job))
        spliced.close()
        assert {r.event.job_id for r in replay} == {alices_job}
    # Naming bob is an admin's right only.
    with pytest.raises(aio.AioRpcError) as raised:
        await Feed(stub, alice, owner="bob").next()
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert decode_rpc_error(raised.value).code == "E018-OWNER_NOT_ALLOWED"
    admin = Feed(stub, root, owner="bob", cursor=bobs_start)
    await admin.opened()
    watched = await admin.until(terminal_of(bobs_job))
    admin.close()
    assert {r.event.job_id for r in watched} == {bobs_job}
