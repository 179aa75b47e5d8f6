"""DeleteJob on both backends (SQLite and NATS JetStream, tests/nats/conftest.py): nothing of the job is left
in the data dir, the database or the buckets (read directly), and an open WatchJob ends with the deletion
event; a running job is cancelled first."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc import aio
from nats.js.errors import KeyNotFoundError, NotFoundError

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.storage.nats.layout import EVENTS_STREAM, NatsConnection, deletion_subject, event_subject
from tests.bridge.conftest import HANG_TIMEOUT
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from collections.abc import Callable

    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub
    from tests.nats.natsproc import NatsServer


class StageLogPlugin:
    """A stage that writes its own log under ``ctx.log_dir``, as the render stage writes ffmpeg's."""

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="logging", title="Logging", weight=1.0, order=450, run=self._run))

    @staticmethod
    def _run(ctx: StageContext) -> dict[str, Any]:
        log = ctx.log_dir / "logging" / f"{ctx.job_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"job {ctx.job_id}\n")
        return {}


async def nats_leftovers(url: str, job_id: str) -> list[str]:
    """Every place of the NATS layout that still holds something of ``job_id``, read directly."""
    connection = NatsConnection([url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    try:
        layout = connection.layout
        left = []
        for bucket, key in (
            (layout.jobs, f"job.{job_id}"),
            (layout.state, f"checkpoints.{job_id}"),
            (layout.state, f"cancel.{job_id}"),
            (layout.state, f"request.{job_id}"),
        ):
            try:
                await bucket.get(key)
                left.append(key)
            except KeyNotFoundError:
                pass
        try:
            await connection.client.jetstream().get_last_msg(EVENTS_STREAM, event_subject(job_id))
            left.append("events")
        except NotFoundError:
            pass
        files = await connection.client.jetstream().object_store("reelcast_files")
        try:
            listed = await files.list()
        except NotFoundError:  # an empty store lists nothing
            listed = []
        left += [info.name for info in listed if info.name.startswith(f"{job_id}/") and not info.deleted]
        return left
    finally:
        await connection.close()


def sqlite_rows(server: ReelcastServer, job_id: str) -> list[str]:
    with sqlite3.connect(server.settings.database_path) as db:
        found = []
        for table, column in (("jobs", "id"), ("events", "job_id"), ("checkpoints", "job_id")):
            if db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (job_id,)).fetchone()[0]:
                found.append(table)
        return found


def sqlite_deletion_record(server: ReelcastServer, job_id: str) -> tuple[job_pb2.JobProgress, str]:
    """The one feed row a deleted job leaves (WatchJobs' deletion record): its event and its labels."""
    with sqlite3.connect(server.settings.database_path) as db:
        rows = db.execute("SELECT payload, labels FROM feed WHERE job_id = ?", (job_id,)).fetchall()
        assert not db.execute("SELECT COUNT(*) FROM job_labels WHERE job_id = ?", (job_id,)).fetchone()[0]
    assert len(rows) == 1, rows
    return job_pb2.JobProgress.FromString(rows[0][0]), rows[0][1]


async def nats_deletion_record(url: str, job_id: str) -> bytes:
    connection = NatsConnection([url], replicas=1, ack_wait_seconds=30)
    await connection.open()
    try:
        message = await connection.client.jetstream().get_last_msg(EVENTS_STREAM, deletion_subject(job_id))
        return message.data or b""
    finally:
        await connection.close()


def assert_ends_with_the_deletion(events: list[job_pb2.JobProgress]) -> None:
    """The stream of a running job deleted meanwhile: gapless, ending with the deletion event; a terminal
    event before it, if the stream read one, is the delete's cancel and comes right before it."""
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_DELETED
    terminal = [i for i, e in enumerate(events) if e.kind == job_pb2.EVENT_KIND_JOB_FAILED]
    assert terminal in ([], [len(events) - 2]), [job_pb2.EventKind.Name(e.kind) for e in events]
    if terminal:
        assert events[-2].job_status == job_pb2.JOB_STATUS_CANCELLED


def files_naming(server: ReelcastServer, job_id: str) -> list[str]:
    return [str(path) for path in server.settings.data_dir.rglob("*") if job_id in path.name]


async def finished_job(stub: Stub, topic: str = "x", labels: dict[str, str] | None = None) -> job_pb2.Job:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic), labels=labels or {})
    job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
    watch = job_service_pb2.WatchJobRequest(job_id=job.id)
    events = await asyncio.wait_for(_collect(stub, watch), HANG_TIMEOUT)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    return job


async def _collect(stub: Stub, request: job_service_pb2.WatchJobRequest) -> list[job_pb2.JobProgress]:
    return [event async for event in stub.WatchJob(request)]


async def test_a_deleted_job_leaves_no_row_file_log_or_object(
    server: ReelcastServer, stub: Stub, backend_name: str, request: pytest.FixtureRequest
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    server.host.register(StageLogPlugin(), "stage-log")
    job = await finished_job(stub, topic="A private topic", labels={"team": "hidden-label"})
    kept = await finished_job(stub)
    assert files_naming(server, job.id)  # its work dir and log exist before
    if backend_name == "nats":
        node: NatsServer = request.getfixturevalue("nats_server")
        assert await nats_leftovers(node.url, job.id)
    else:
        assert sqlite_rows(server, job.id) == ["jobs", "events", "checkpoints"]

    await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id))

    assert files_naming(server, job.id) == []
    if backend_name == "nats":
        assert await nats_leftovers(node.url, job.id) == []
        assert await nats_leftovers(node.url, kept.id)  # the other job is untouched
    else:
        assert sqlite_rows(server, job.id) == []
        assert sqlite_rows(server, kept.id) == ["jobs", "events", "checkpoints"]
    # The one trace left is WatchJobs' deletion record (forgotten after a retention period): the id, the owner
    # and the deletion event, nothing of the job's spec or labels.
    if backend_name == "nats":
        record = await nats_deletion_record(node.url, job.id)
        assert b"private topic" not in record and b"hidden-label" not in record
    else:
        event, labels = sqlite_deletion_record(server, job.id)
        assert event.kind == job_pb2.EVENT_KIND_JOB_DELETED and event.job_id == job.id
        assert labels == "{}"
    assert files_naming(server, kept.id)
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id))
    assert decode_rpc_error(raised.value).code == "E003-JOB_NOT_FOUND"


async def test_deleting_a_running_job_cancels_it_and_ends_its_open_stream_with_the_deletion_event(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    job = (
        await stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="x")))
        )
    ).job
    events: list[job_pb2.JobProgress] = []

    async def watch() -> None:
        async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
            events.append(event)
            started = event.kind == job_pb2.EVENT_KIND_STEP_STATUS and event.stage == "visuals"
            if started and event.stage_status == job_pb2.STEP_STATUS_RUNNING:
                await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id))

    await asyncio.wait_for(watch(), HANG_TIMEOUT)
    # Always the deletion's event last: a stream that read the cancel's terminal event waits past it for the
    # deletion this server is making (one that reads only after the deletion finds the job gone).
    assert_ends_with_the_deletion(events)
    sequences = [event.sequence for event in events]
    assert sequences == list(range(1, len(sequences) + 1))
    assert files_naming(server, job.id) == []


async def test_a_running_job_deleted_through_one_api_server_ends_the_streams_open_on_another(
    server: ReelcastServer, stub: Stub, backend_name: str
) -> None:
    """Two API servers on one NATS: the stream open on the second ends with the deletion event, not with the
    cancel that the first wrote before deleting (its deleting notice reached every server)."""
    if backend_name != "nats":
        pytest.skip("one API server holds the embedded store")
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    other = ReelcastServer(
        dataclasses.replace(server.settings, data_dir=server.settings.data_dir.parent / "other"),
        host=PluginHost.load(builtins=False),
    )
    other.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    await other.start()
    try:
        async with aio.insecure_channel(other.target) as channel:
            watcher = job_service_pb2_grpc.JobServiceStub(channel)
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="x"))
            job = (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job
            events: list[job_pb2.JobProgress] = []

            async def watch() -> None:
                async for event in watcher.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
                    events.append(event)
                    started = event.kind == job_pb2.EVENT_KIND_STEP_STATUS and event.stage == "visuals"
                    if started and event.stage_status == job_pb2.STEP_STATUS_RUNNING:
                        await stub.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id))

            await asyncio.wait_for(watch(), HANG_TIMEOUT)
    finally:
        await other.stop(grace=0.5)
    assert_ends_with_the_deletion(events)
