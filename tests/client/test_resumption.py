"""watch_job resumes by itself: through a real TCP proxy that cuts the connection mid-stream, and across a
real server process killed and restarted on the same port. The watched events must equal the uninterrupted
stream exactly: same events, in order, no gap, no duplicate."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from reelcast.client import AsyncClient, Client, RetryPolicy, UnavailableError, is_terminal
from reelcast.jobs.v1 import job_pb2
from reelcast.server.app import ReelcastServer
from tests.client.conftest import FAST_RETRY, HANG_TIMEOUT
from tests.client.proxy import CuttingProxy
from tests.processes import ALL_BUILTINS, ServerProcess


async def _uninterrupted(target: str, job_id: str) -> list[job_pb2.JobProgress]:
    async with AsyncClient(target) as client:
        return [event async for event in client.watch_job(job_id)]


async def _watch_cutting(
    client: AsyncClient, job_id: str, cut_after: set[int], cut: Callable[[], None], after: int = 0
) -> list[job_pb2.JobProgress]:
    events = []
    async for event in client.watch_job(job_id, after, retry=FAST_RETRY):
        events.append(event)
        if len(events) in cut_after:
            cut()
    return events


def _assert_gapless(events: list[job_pb2.JobProgress]) -> None:
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert events[-1].kind in (job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED)


async def test_a_watch_cut_three_times_mid_job_sees_the_uninterrupted_sequence(
    open_server: ReelcastServer, proxy: CuttingProxy
) -> None:
    async with AsyncClient(proxy.target) as client:
        job = await client.create_job(topic="Cut three times")
        watched = await asyncio.wait_for(_watch_cutting(client, job.id, {2, 9, 17}, proxy.cut), HANG_TIMEOUT)
    assert proxy.cuts == 3
    assert proxy.accepted >= 4  # the first connection and one per cut
    _assert_gapless(watched)
    assert watched == await _uninterrupted(open_server.target, job.id)
    # Live events were resumed, not only a replay of a finished job: the job ran after the first cut.
    assert watched[2].job_status == job_pb2.JOB_STATUS_RUNNING


async def test_a_watch_cut_during_the_replay_of_a_finished_job_resumes_after_its_cursor(
    open_server: ReelcastServer, proxy: CuttingProxy
) -> None:
    async with AsyncClient(proxy.target) as client:
        job = await client.create_job(topic="Replayed")
        complete = await _uninterrupted(open_server.target, job.id)
        watched = await asyncio.wait_for(
            _watch_cutting(client, job.id, {1, 5}, proxy.cut, after=4), HANG_TIMEOUT
        )
    assert watched == complete[4:]


async def test_the_sync_client_resumes_through_cuts_too(
    open_server: ReelcastServer, proxy: CuttingProxy
) -> None:
    loop = asyncio.get_running_loop()

    def watch() -> tuple[str, list[job_pb2.JobProgress]]:
        with Client(proxy.target, retry=FAST_RETRY) as client:
            job_id = client.create_job(topic="Sync cut").id
            events = []
            for event in client.watch_job(job_id):
                events.append(event)
                if len(events) in (3, 12):
                    loop.call_soon_threadsafe(proxy.cut)
            return job_id, events

    job_id, watched = await asyncio.wait_for(asyncio.to_thread(watch), HANG_TIMEOUT)
    assert proxy.accepted >= 3
    _assert_gapless(watched)
    assert watched == await _uninterrupted(open_server.target, job_id)


async def test_a_resync_is_delivered_once_and_the_watch_continues_after_it(
    open_server: ReelcastServer, proxy: CuttingProxy
) -> None:
    async with AsyncClient(proxy.target) as client:
        job = await client.create_job(topic="Trimmed")
        complete = await _uninterrupted(open_server.target, job.id)
        # Trim the history as retention would: the first five events are gone from the store.
        with sqlite3.connect(open_server.settings.database_path) as database:
            database.execute("DELETE FROM events WHERE job_id = ? AND sequence <= 5", (job.id,))
        # Cut right after the RESYNC: the reconnection resumes after its sequence and gets no second one.
        watched = await asyncio.wait_for(_watch_cutting(client, job.id, {1}, proxy.cut), HANG_TIMEOUT)
    assert proxy.cuts == 1
    resync, rest = watched[0], watched[1:]
    assert resync.kind == job_pb2.EVENT_KIND_RESYNC
    assert resync.sequence == 5
    assert resync.snapshot.id == job.id
    assert resync.snapshot.status == job_pb2.JOB_STATUS_SUCCEEDED
    assert rest == complete[5:]


async def test_a_watch_gives_up_when_the_retry_budget_is_spent(open_server: ReelcastServer) -> None:
    proxy = await CuttingProxy(open_server.target).start()
    try:
        async with AsyncClient(proxy.target) as client:
            job = await client.create_job(topic="Gone")
            await proxy.close()  # nothing listens there any more
            brief = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)
            events: list[job_pb2.JobProgress] = []
            with pytest.raises(UnavailableError) as failure:
                await _collect_into(events, client.watch_job(job.id, retry=brief))
    finally:
        await proxy.close()
    assert failure.value.code == ""
    assert events == []


async def _collect_into(events: list[job_pb2.JobProgress], watch: AsyncIterator[job_pb2.JobProgress]) -> None:
    async for event in watch:
        events.append(event)


async def test_a_watch_survives_the_server_being_killed_and_restarted_on_the_same_port(
    installed_sample_plugin: Path, tmp_path: Path
) -> None:
    process = ServerProcess(
        tmp_path / "data",
        env={
            "PYTHONPATH": str(installed_sample_plugin),
            "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
            "REELCAST_SAMPLE_DELAY": "0.2",
            "REELCAST_SAMPLE_REPORTS": "12",
        },
        keep_port=True,
    )
    target = await asyncio.to_thread(process.start)
    try:
        async with AsyncClient(target) as client:
            job = await client.create_job(topic="Restarted")
            watched: list[job_pb2.JobProgress] = []

            async def watch() -> None:
                async for event in client.watch_job(job.id, retry=FAST_RETRY):
                    watched.append(event)

            watching = asyncio.create_task(watch())
            while not any(event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS for event in watched):
                await asyncio.sleep(0.02)
                assert not watching.done(), "the watch ended before the job made progress"
            before = len(watched)
            await asyncio.to_thread(process.kill)
            assert await asyncio.to_thread(process.start) == target
            await asyncio.wait_for(watching, HANG_TIMEOUT)
        _assert_gapless(watched)
        assert watched[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
        assert any(event.attempt == 2 for event in watched[before:]), (
            "the job did not resume after the restart"
        )
        assert watched == await _uninterrupted(target, job.id)
    finally:
        await asyncio.to_thread(process.stop)


async def test_watch_jobs_cut_mid_stream_sees_every_job_created_later_exactly_once(
    open_server: ReelcastServer, proxy: CuttingProxy
) -> None:
    """watch_jobs (every job of the caller) resumes from its last cursor: through three cuts, the events of
    two jobs created after it opened arrive as WatchJob sends them, none twice, none missing."""

    async def watch(client: AsyncClient) -> list[job_pb2.JobProgress]:
        events: list[job_pb2.JobProgress] = []
        finished: set[str] = set()
        job_ids: list[str] = []
        async for response in client.watch_jobs(retry=FAST_RETRY):
            if not response.HasField("event"):  # open: what is created from now on comes
                assert not job_ids
                job_ids = [(await client.create_job(topic=f"All {n}")).id for n in range(2)]
                continue
            events.append(response.event)
            if len(events) in (2, 9, 17):
                proxy.cut()
            if is_terminal(response.event):
                finished.add(response.event.job_id)
            if finished == set(job_ids):
                return events
        raise AssertionError("the stream ended")

    async with AsyncClient(proxy.target) as client:
        watched = await asyncio.wait_for(watch(client), HANG_TIMEOUT)
    assert proxy.cuts == 3
    for job_id in {event.job_id for event in watched}:
        assert [e for e in watched if e.job_id == job_id] == await _uninterrupted(open_server.target, job_id)
    assert len({event.job_id for event in watched}) == 2
