"""JobService against a real gRPC server on 127.0.0.1:0, with test stages registered through the hooks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from google.rpc import error_details_pb2
from grpc import StatusCode, aio
from grpc_status import rpc_status

from reelcast.jobs.v1 import job_pb2, job_service_pb2

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub
from reelcast.server.app import ReelcastServer
from tests.conftest import status_code
from tests.stages import PipelinePlugin


def spec(topic: str = "Sea otters") -> job_pb2.JobSpec:
    return job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))


async def create(stub: Stub, topic: str = "Sea otters") -> job_pb2.Job:
    return (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec(topic)))).job


async def watch_all(stub: Stub, job_id: str, after: int = 0) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
    return [event async for event in stub.WatchJob(request)]


async def wait_for_status(stub: Stub, job_id: str, status: job_pb2.JobStatus.ValueType) -> job_pb2.Job:
    for _ in range(500):
        job = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))).job
        if job.status == status:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {job_pb2.JobStatus.Name(status)}")


async def test_create_fills_defaults_and_get_returns_the_stored_job(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    created = await create(stub)
    assert created.status == job_pb2.JOB_STATUS_QUEUED
    assert created.spec.render.width == 1280 and created.spec.render.height == 720
    assert created.spec.plan.target_duration_seconds == 30
    assert [step.name for step in created.steps] == ["script", "voice", "visuals", "render", "postprocess"]
    assert created.correlation_id
    fetched = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.id))).job
    assert fetched.id == created.id and fetched.spec == created.spec


async def test_correlation_id_is_taken_from_metadata_and_echoed(server: ReelcastServer, stub: Stub) -> None:
    call = stub.CreateJob(
        job_service_pb2.CreateJobRequest(spec=spec()), metadata=(("x-correlation-id", "req-42.a_b"),)
    )
    job = (await call).job
    assert job.correlation_id == "req-42.a_b"
    assert ("x-correlation-id", "req-42.a_b") in tuple(await call.initial_metadata())
    events = await asyncio.wait_for(watch_all_until(stub, job.id, 1), 10)
    assert events[0].correlation_id == "req-42.a_b"


async def watch_all_until(stub: Stub, job_id: str, count: int) -> list[job_pb2.JobProgress]:
    events: list[job_pb2.JobProgress] = []
    async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)):
        events.append(event)
        if len(events) >= count:
            break
    return events


async def test_malformed_correlation_id_is_replaced(server: ReelcastServer, stub: Stub) -> None:
    call = stub.CreateJob(
        job_service_pb2.CreateJobRequest(spec=spec()),
        metadata=(("x-correlation-id", "bad id; secret=hunter2"),),
    )
    job = (await call).job
    assert job.correlation_id != "bad id; secret=hunter2"
    assert len(job.correlation_id) == 32
    assert ("x-correlation-id", job.correlation_id) in tuple(await call.initial_metadata())


async def test_list_paginates_newest_first_with_opaque_tokens(server: ReelcastServer, stub: Stub) -> None:
    await server.runner.stop()  # keep every job queued so the listing is stable
    ids = [(await create(stub, f"topic {index}")).id for index in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListJobs(job_service_pb2.ListJobsRequest(page_size=3, page_token=token))
        assert len(page.jobs) <= 3
        seen.extend(job.id for job in page.jobs)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))


async def test_list_filters_by_status(server: ReelcastServer, stub: Stub) -> None:
    await server.runner.stop()
    kept = await create(stub, "kept")
    cancelled = await create(stub, "cancelled")
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=cancelled.id))
    queued = await stub.ListJobs(job_service_pb2.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_QUEUED]))
    assert [job.id for job in queued.jobs] == [kept.id]
    both = await stub.ListJobs(
        job_service_pb2.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_CANCELLED])
    )
    assert {job.id for job in both.jobs} == {kept.id, cancelled.id}


async def test_negative_page_size_is_invalid_argument(server: ReelcastServer, stub: Stub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(job_service_pb2.ListJobsRequest(page_size=-1))
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT


async def test_page_token_from_another_filter_is_rejected(server: ReelcastServer, stub: Stub) -> None:
    await server.runner.stop()
    for index in range(3):
        await create(stub, f"topic {index}")
    page = await stub.ListJobs(job_service_pb2.ListJobsRequest(page_size=1))
    assert page.next_page_token
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(
            job_service_pb2.ListJobsRequest(
                page_size=1, page_token=page.next_page_token, statuses=[job_pb2.JOB_STATUS_QUEUED]
            )
        )
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT
    with pytest.raises(aio.AioRpcError) as garbage:
        await stub.ListJobs(job_service_pb2.ListJobsRequest(page_token="not-a-token!"))
    assert status_code(garbage.value) == StatusCode.INVALID_ARGUMENT


def field_violations(error: aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


async def create_labelled(stub: Stub, labels: dict[str, str]) -> job_pb2.Job:
    labelled = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Labelled"), labels=labels)
    return (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=labelled))).job


async def test_list_with_a_label_selector_returns_only_jobs_carrying_every_label(
    server: ReelcastServer, stub: Stub
) -> None:
    await server.runner.stop()
    prod_video = await create_labelled(stub, {"team": "video", "env": "prod"})
    await create_labelled(stub, {"team": "video", "env": "staging"})
    await create_labelled(stub, {"team": "audio", "env": "prod"})
    await create(stub, "unlabelled")
    got = await stub.GetJob(job_service_pb2.GetJobRequest(job_id=prod_video.id))
    assert dict(got.job.spec.labels) == {"team": "video", "env": "prod"}

    async def listed(selector: str) -> list[str]:
        page = await stub.ListJobs(job_service_pb2.ListJobsRequest(label_selector=selector))
        return [job.id for job in page.jobs]

    assert await listed(" env = prod , team=video ") == [prod_video.id]
    assert len(await listed("team=video")) == 2
    assert await listed("team=nobody") == []
    assert len(await listed("")) == 4


async def test_a_page_token_from_one_label_selector_is_refused_with_another(
    server: ReelcastServer, stub: Stub
) -> None:
    await server.runner.stop()
    for _ in range(3):
        await create_labelled(stub, {"team": "video"})
    page = await stub.ListJobs(job_service_pb2.ListJobsRequest(page_size=1, label_selector="team=video"))
    assert page.next_page_token
    # The same filter written differently keeps its token.
    same = job_service_pb2.ListJobsRequest(
        page_size=1, page_token=page.next_page_token, label_selector=" team = video "
    )
    assert len((await stub.ListJobs(same)).jobs) == 1
    for other in ("team=audio", ""):
        request = job_service_pb2.ListJobsRequest(
            page_size=1, page_token=page.next_page_token, label_selector=other
        )
        with pytest.raises(aio.AioRpcError) as raised:
            await stub.ListJobs(request)
        assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT
        assert [field for field, _ in field_violations(raised.value)] == ["page_token"]


@pytest.mark.parametrize(
    "selector", ["team", "=video", "Team=video", "team=a,team=b", "team=video,,", "1team=x", "k=v\x07"]
)
async def test_a_malformed_label_selector_is_a_field_violation(
    server: ReelcastServer, stub: Stub, selector: str
) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(job_service_pb2.ListJobsRequest(label_selector=selector))
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(raised.value)] == ["label_selector"]


@pytest.mark.parametrize(
    "labels",
    [
        {f"k{index}": "v" for index in range(17)},
        {"a" * 64: "v"},
        {"": "v"},
        {"Team": "v"},
        {"9team": "v"},
        {"team": "v" * 64},
        {"team": "a,b"},
        {"team": "bell\x07"},
        {"team": " padded"},
    ],
)
async def test_labels_out_of_bounds_are_field_violations_on_spec_labels(
    server: ReelcastServer, stub: Stub, labels: dict[str, str]
) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await create_labelled(stub, labels)
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT
    assert {field for field, _ in field_violations(raised.value)} == {"spec.labels"}


async def test_sixteen_labels_at_their_longest_are_accepted(server: ReelcastServer, stub: Stub) -> None:
    labels = {f"k{index:02d}" + "x" * 60: "v" * 63 for index in range(16)}
    job = await create_labelled(stub, labels)
    assert dict(job.spec.labels) == labels


async def test_invalid_spec_gets_field_violations(server: ReelcastServer, stub: Stub) -> None:
    bad = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="  ", language="not a tag"),
        plan=job_pb2.Plan(target_duration_seconds=-5),
        render=job_pb2.RenderSpec(width=641, height=360, fps=500),
    )
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=bad))
    error = raised.value
    assert error.code() == StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: set[str] = set()
    reasons: set[str] = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.update(v.field for v in bad_request.field_violations)
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.add(info.reason)
    assert {
        "spec.brief.topic",
        "spec.brief.language",
        "spec.plan.target_duration_seconds",
        "spec.render.width",
        "spec.render.fps",
    } <= fields
    assert reasons == {"E001-INVALID_SPEC"}


@pytest.mark.parametrize("tag", ["en" + "-abcd" * 100_000, "en" + "-abcdefgh" * 4])
async def test_a_language_tag_past_35_characters_is_a_field_violation(
    server: ReelcastServer, stub: Stub, tag: str
) -> None:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters", language=tag))
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    assert "spec.brief.language" in (raised.value.details() or "")


async def test_unknown_job_is_not_found(server: ReelcastServer, stub: Stub) -> None:
    for call in (
        stub.GetJob(job_service_pb2.GetJobRequest(job_id="nope")),
        stub.CancelJob(job_service_pb2.CancelJobRequest(job_id="nope")),
    ):
        with pytest.raises(aio.AioRpcError) as raised:
            await call
        assert status_code(raised.value) == StatusCode.NOT_FOUND


async def test_watching_an_unknown_job_is_not_found(server: ReelcastServer, stub: Stub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await watch_all(stub, "missing-job")
    assert status_code(raised.value) == StatusCode.NOT_FOUND


async def test_job_runs_to_completion_with_gapless_sequences(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    job = await create(stub)
    events = await asyncio.wait_for(watch_all(stub, job.id), 30)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert sum(1 for event in events if event.kind in (4, 5)) == 1
    assert events[-1].output.size_bytes > 0
    final = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id))).job
    assert final.status == job_pb2.JOB_STATUS_SUCCEEDED
    assert final.last_sequence == events[-1].sequence
    assert all(step.status == job_pb2.STEP_STATUS_SUCCEEDED for step in final.steps)
    assert all(step.duration.ToNanoseconds() >= 0 and step.HasField("end_time") for step in final.steps)


async def test_watch_from_a_middle_sequence_returns_exactly_the_remainder(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    job = await create(stub)
    everything = await asyncio.wait_for(watch_all(stub, job.id), 30)
    middle = everything[len(everything) // 2].sequence
    remainder = await asyncio.wait_for(watch_all(stub, job.id, after=middle), 30)
    assert remainder == everything[middle:]


async def test_two_concurrent_watchers_receive_identical_sequences(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(delay=0.01), "pipeline")
    job = await create(stub)
    first, second = await asyncio.wait_for(
        asyncio.gather(watch_all(stub, job.id), watch_all(stub, job.id)), 30
    )
    assert first == second
    assert [event.sequence for event in first] == list(range(1, len(first) + 1))


async def test_watcher_joining_mid_job_gets_live_events_without_gaps(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(delay=0.02), "pipeline")
    job = await create(stub)
    early = await watch_all_until(stub, job.id, 6)
    rest = await asyncio.wait_for(watch_all(stub, job.id, after=early[-1].sequence), 30)
    combined = early + rest
    assert [event.sequence for event in combined] == list(range(1, len(combined) + 1))
    assert combined[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED


async def test_negative_after_sequence_is_invalid_argument(server: ReelcastServer, stub: Stub) -> None:
    job = await create(stub)
    with pytest.raises(aio.AioRpcError) as raised:
        await watch_all(stub, job.id, after=-1)
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT


async def test_cancelling_a_queued_job_ends_it_at_once(server: ReelcastServer, stub: Stub) -> None:
    await server.runner.stop()
    job = await create(stub)
    cancelled = (await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))).job
    assert cancelled.status == job_pb2.JOB_STATUS_CANCELLED
    events = await asyncio.wait_for(watch_all(stub, job.id), 10)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
    assert [error.code for error in events[-1].errors] == ["E311-CANCELLED"]
    assert all(step.status == job_pb2.STEP_STATUS_SKIPPED for step in cancelled.steps)


async def test_cancelling_a_running_job_stops_its_stage(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(hang_at="render"), "pipeline")
    job = await create(stub)
    async for event in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id)):
        if event.stage == "render" and event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
            break
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    final = await wait_for_status(stub, job.id, job_pb2.JOB_STATUS_CANCELLED)
    steps = {step.name: step.status for step in final.steps}
    assert steps["render"] == job_pb2.STEP_STATUS_CANCELLED
    assert steps["postprocess"] == job_pb2.STEP_STATUS_SKIPPED
    assert [error.code for error in final.errors] == ["E311-CANCELLED"]
    assert not server.settings.work_dir(job.id).exists()


async def test_cancelling_a_finished_job_is_failed_precondition(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    job = await create(stub)
    await asyncio.wait_for(watch_all(stub, job.id), 30)
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    assert status_code(raised.value) == StatusCode.FAILED_PRECONDITION


async def test_a_stage_that_raises_fails_the_job_with_a_code_and_details(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(fail_at="visuals"), "pipeline")
    job = await create(stub)
    events = await asyncio.wait_for(watch_all(stub, job.id), 30)
    terminal = events[-1]
    assert terminal.kind == job_pb2.EVENT_KIND_JOB_FAILED
    assert terminal.job_status == job_pb2.JOB_STATUS_FAILED
    assert [error.code for error in terminal.errors] == ["E309-STAGE_FAILED"]
    assert terminal.errors[0].remediation
    assert "/secret/path" not in terminal.errors[0].message  # sanitized: no exception text leaks
    final = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id))).job
    assert final.status == job_pb2.JOB_STATUS_FAILED
    assert final.failure.stage == "visuals"
    assert final.failure.error_code == "E309-STAGE_FAILED"
    assert final.failure.suggested_actions
    assert final.failure.HasField("failed_at")
    steps = {step.name: step.status for step in final.steps}
    assert steps["visuals"] == job_pb2.STEP_STATUS_FAILED
    assert steps["render"] == job_pb2.STEP_STATUS_SKIPPED


async def test_overall_percent_crosses_the_seed_boundaries_in_order(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    job = await create(stub)
    events = await asyncio.wait_for(watch_all(stub, job.id), 30)
    percents = [event.job_percent for event in events]
    assert percents == sorted(percents), "overall percent must never decrease"
    starts = {
        event.stage_title: event.job_percent
        for event in events
        if event.kind == job_pb2.EVENT_KIND_STEP_STATUS and event.stage_status == job_pb2.STEP_STATUS_RUNNING
    }
    assert starts == {"Script": 10, "Voice": 30, "Visuals": 50, "Rendering": 70, "Postprocessing": 90}
    assert percents[-1] == 100


async def test_create_with_the_same_request_id_returns_the_first_job(
    server: ReelcastServer, stub: Stub
) -> None:
    request = job_service_pb2.CreateJobRequest(spec=spec(), request_id="order-17")
    first = (await stub.CreateJob(request)).job
    again = (await stub.CreateJob(request)).job
    assert again.id == first.id
    listed = await stub.ListJobs(job_service_pb2.ListJobsRequest())
    assert [job.id for job in listed.jobs] == [first.id]


async def test_jobs_beyond_the_concurrency_limit_wait_as_queued(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(hang_at="script"), "pipeline")
    first = await create(stub, "first")
    second = await create(stub, "second")
    await wait_for_status(stub, first.id, job_pb2.JOB_STATUS_RUNNING)
    await asyncio.sleep(0.2)
    waiting = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=second.id))).job
    assert waiting.status == job_pb2.JOB_STATUS_QUEUED
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=first.id))
    await wait_for_status(stub, second.id, job_pb2.JOB_STATUS_RUNNING)
    await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=second.id))
    await wait_for_status(stub, second.id, job_pb2.JOB_STATUS_CANCELLED)


async def test_list_stages_reports_the_pipeline(server: ReelcastServer, stub: Stub) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    stages = (await stub.ListStages(job_service_pb2.ListStagesRequest())).stages
    assert [(s.name, s.title, s.weight, s.plugin) for s in stages] == [
        ("script", "Script", 20, "pipeline"),
        ("voice", "Voice", 20, "pipeline"),
        ("visuals", "Visuals", 20, "pipeline"),
        ("render", "Rendering", 20, "pipeline"),
        ("postprocess", "Postprocessing", 10, "pipeline"),
    ]


async def test_list_voices_reports_piper_and_espeak_voices_on_the_server_with_engine_and_quality(
    stub: Stub,
) -> None:
    from reelcast.plugins.builtin import espeak, piper_tts

    voices = (await stub.ListVoices(job_service_pb2.ListVoicesRequest())).voices

    listed = {(v.key, v.name, tuple(v.languages), v.engine, v.quality) for v in voices}
    assert listed == {(v.key, v.name, v.languages, "espeak-ng", "low") for v in espeak.available_voices()} | {
        (v.key, v.name, v.languages, "piper", v.quality) for v in piper_tts.installed_voices()
    }
    keys = [voice.key for voice in voices]
    assert keys == sorted(keys) and "en-us" in keys
    joe = next(v for v in voices if v.key == "en-us-joe")
    assert (joe.engine, joe.quality, list(joe.languages)) == ("piper", "medium", ["en-us", "en"])


async def test_get_caller_without_authentication_is_anonymous_and_not_an_admin(stub: Stub) -> None:
    caller = (await stub.GetCaller(job_service_pb2.GetCallerRequest())).caller
    assert (caller.user, caller.admin) == ("anonymous", False)


async def test_health_and_reflection_are_served(server: ReelcastServer, channel: aio.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health: Any = health_pb2_grpc.HealthStub(channel)  # typed for sync channels only
    reply = await health.Check(health_pb2.HealthCheckRequest(service="reelcast.jobs.v1.JobService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    services: list[str] = []
    async for answer in reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        services.extend(service.name for service in answer.list_services_response.service)
    assert "reelcast.jobs.v1.JobService" in services


async def test_watching_a_finished_job_from_its_last_sequence_ends_at_once(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    job = await create(stub)
    events = await asyncio.wait_for(watch_all(stub, job.id), 30)
    assert await asyncio.wait_for(watch_all(stub, job.id, after=events[-1].sequence), 5) == []
    with pytest.raises(aio.AioRpcError) as raised:
        await watch_all(stub, job.id, after=events[-1].sequence + 1)
    assert status_code(raised.value) == StatusCode.INVALID_ARGUMENT
