"""AsyncClient against a real in-process server: every method, typed errors, correlation ids."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from reelcast.client import (
    AsyncClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ReelcastError,
    is_terminal,
)
from reelcast.jobs.v1 import job_pb2
from reelcast.server.app import ReelcastServer
from tests.client.conftest import HANG_TIMEOUT


async def test_create_from_keywords_fills_defaults_and_get_returns_the_stored_job(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target) as client:
        created = await client.create_job(topic="Otters", audience="kids", duration_seconds=12, fps=24)
        assert created.id
        assert created.status in (job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING)
        assert created.spec.brief.audience == "kids"
        assert created.spec.plan.target_duration_seconds == 12
        assert created.spec.render.fps == 24
        fetched = await client.get_job(created.id)
        assert fetched.id == created.id
        assert fetched.spec.brief.topic == "Otters"


async def test_create_accepts_a_spec_message_or_its_json_mapping(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        from_message = await client.create_job(job_pb2.JobSpec(brief=job_pb2.Brief(topic="From a message")))
        from_mapping = await client.create_job({"brief": {"topic": "From JSON"}, "plan": {"style": "clean"}})
        assert from_message.spec.brief.topic == "From a message"
        assert from_mapping.spec.brief.topic == "From JSON"
        assert from_mapping.spec.plan.style == "clean"
        with pytest.raises(TypeError):
            await client.create_job(job_pb2.JobSpec(), topic="both")
        with pytest.raises(TypeError):
            await client.create_job(topics="typo")  # type: ignore[call-arg]


async def test_a_repeated_request_id_returns_the_first_job(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        first = await client.create_job(topic="Once", request_id="order-42")
        again = await client.create_job(topic="Once", request_id="order-42")
        other = await client.create_job(topic="Once")
        assert again.id == first.id
        assert other.id != first.id


async def test_list_jobs_follows_page_tokens_to_the_end_newest_first(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        created = [(await client.create_job(topic=f"job {index}")).id for index in range(5)]
        listed = [job.id async for job in client.list_jobs(page_size=2)]
        assert listed == list(reversed(created))
        page = await client.list_jobs_page(page_size=2)
        assert [job.id for job in page.jobs] == listed[:2]
        assert page.next_page_token
        rest = [job.id async for job in client.list_jobs(page_size=2, page_token=page.next_page_token)]
        assert rest == listed[2:]


async def test_list_jobs_filters_by_status_given_by_name(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        job = await client.create_job(topic="finishes")
        events = [event async for event in client.watch_job(job.id)]
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
        succeeded = [j.id async for j in client.list_jobs(statuses=["succeeded"])]
        running = [j.id async for j in client.list_jobs(statuses=[job_pb2.JOB_STATUS_RUNNING])]
        assert job.id in succeeded
        assert job.id not in running
        with pytest.raises(ValueError, match="unknown job status"):
            [j async for j in client.list_jobs(statuses=["sleeping"])]


async def test_create_job_takes_a_priority_as_a_word_or_an_enum(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        high = await client.create_job(topic="urgent", priority="high")
        low = await client.create_job(topic="later", priority=job_pb2.JOB_PRIORITY_LOW)
        assert high.spec.priority == job_pb2.JOB_PRIORITY_HIGH
        assert low.spec.priority == job_pb2.JOB_PRIORITY_LOW
        with pytest.raises(ValueError, match="priority must be one of high, normal, low"):
            await client.create_job(topic="bad", priority="urgent")


async def test_list_jobs_filters_by_labels_given_as_a_mapping_or_a_selector(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target) as client:
        wanted = await client.create_job(topic="labelled", labels={"team": "video", "env": "prod"})
        await client.create_job(topic="other", labels={"team": "video"})
        assert dict(wanted.spec.labels) == {"team": "video", "env": "prod"}
        by_mapping = [j.id async for j in client.list_jobs(labels={"env": "prod", "team": "video"})]
        by_selector = [j.id async for j in client.list_jobs(labels="team=video,env=prod")]
        assert by_mapping == by_selector == [wanted.id]
        assert len([j async for j in client.list_jobs(labels={"team": "video"})]) == 2


async def test_watch_streams_every_event_once_in_order_to_the_terminal_one(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target) as client:
        job = await client.create_job(topic="Watched")
        events = await asyncio.wait_for(_collect(client, job.id), HANG_TIMEOUT)
        assert [event.sequence for event in events] == list(range(1, len(events) + 1))
        assert is_terminal(events[-1])
        assert sum(is_terminal(event) for event in events) == 1
        middle = events[len(events) // 2].sequence
        assert await _collect(client, job.id, middle) == events[middle:]


async def test_cancel_stops_a_running_job_and_a_finished_one_is_a_failed_precondition(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target) as client:
        job = await client.create_job(topic="Cancelled")
        await client.cancel_job(job.id)
        events = await asyncio.wait_for(_collect(client, job.id), HANG_TIMEOUT)
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
        assert (await client.get_job(job.id)).status == job_pb2.JOB_STATUS_CANCELLED
        with pytest.raises(FailedPreconditionError) as failure:
            await client.cancel_job(job.id)
        assert failure.value.code == "E004-JOB_ALREADY_FINISHED"
        assert failure.value.status == grpc.StatusCode.FAILED_PRECONDITION


async def test_list_stages_in_pipeline_order(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        stages = await client.list_stages()
    assert [stage.name for stage in stages] == ["script", "voice", "visuals", "render", "postprocess"]


async def test_read_artifact_streams_the_output_file(open_server: ReelcastServer) -> None:
    async with AsyncClient(open_server.target) as client:
        job = await client.create_job(topic="Artifact")
        await _collect(client, job.id)
        finished = await client.get_job(job.id)
        data = b"".join([chunk async for chunk in client.read_artifact(job.id, "video")])
        with open(finished.output.video_path, "rb") as output:
            assert data == output.read()
        tail = b"".join([chunk async for chunk in client.read_artifact(job.id, offset=len(data) - 3)])
        assert tail == data[-3:]


async def test_errors_are_typed_with_code_message_remediation_and_correlation_id(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.get_job("no-such-job", correlation_id="lookup-1")
        error = missing.value
        assert isinstance(error, ReelcastError)
        assert error.status == grpc.StatusCode.NOT_FOUND
        assert error.code == "E003-JOB_NOT_FOUND"
        assert error.message == "No job with this id."
        assert "list your jobs" in error.remediation
        assert error.correlation_id == "lookup-1"
        assert "E003-JOB_NOT_FOUND" in str(error)

        with pytest.raises(InvalidArgumentError) as invalid:
            await client.create_job(topic="", fps=500)
        fields = {violation.field for violation in invalid.value.field_violations}
        assert invalid.value.code == "E001-INVALID_SPEC"
        assert {"spec.brief.topic", "spec.render.fps"} <= fields

        with pytest.raises(NotFoundError) as not_watched:
            await asyncio.wait_for(_collect(client, "no-such-job"), HANG_TIMEOUT)
        assert not_watched.value.code == "E003-JOB_NOT_FOUND"


async def test_a_caller_chosen_correlation_id_reaches_the_job_its_events_and_errors(
    open_server: ReelcastServer,
) -> None:
    async with AsyncClient(open_server.target, correlation_id="client-wide") as client:
        job = await client.create_job(topic="Traced", correlation_id="trace-me.42")
        assert job.correlation_id == "trace-me.42"
        events = await _collect(client, job.id)
        assert {event.correlation_id for event in events} == {"trace-me.42"}
        defaulted = await client.create_job(topic="Traced by the client default")
        assert defaulted.correlation_id == "client-wide"
        with pytest.raises(FailedPreconditionError) as failure:
            await client.cancel_job(job.id)
        assert failure.value.correlation_id == "client-wide"
    async with AsyncClient(open_server.target) as client:
        generated = await client.create_job(topic="Generated id")
        assert len(generated.correlation_id) == 32
        with pytest.raises(ValueError, match="correlation id"):
            await client.get_job(job.id, correlation_id="has spaces")


async def test_an_unreachable_server_is_unavailable_without_a_catalogue_code() -> None:
    from reelcast.client import NO_RETRY, UnavailableError

    async with AsyncClient("127.0.0.1:1", retry=NO_RETRY, timeout=10) as client:
        with pytest.raises(UnavailableError) as failure:
            await client.list_stages(correlation_id="offline-1")
    assert failure.value.code == ""
    assert failure.value.correlation_id == "offline-1"


async def _collect(client: AsyncClient, job_id: str, after: int = 0) -> list[job_pb2.JobProgress]:
    return [event async for event in client.watch_job(job_id, after)]


async def test_unary_calls_are_retried_on_unavailable_by_the_retry_policy(
    open_server: ReelcastServer,
) -> None:
    from reelcast.client import NO_RETRY, RetryPolicy, UnavailableError
    from tests.client.proxy import CuttingProxy

    flaky = await CuttingProxy(open_server.target, refuse_first=2).start()
    try:
        async with AsyncClient(flaky.target, retry=NO_RETRY) as client:
            with pytest.raises(UnavailableError):
                await client.list_stages()
        flaky.accepted = 0
        retrying = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2)
        async with AsyncClient(flaky.target, retry=retrying) as client:
            job = await client.create_job(topic="Created on a later attempt")
            assert flaky.accepted >= 3
            assert [j.id async for j in client.list_jobs()].count(job.id) == 1
    finally:
        await flaky.close()
