"""Oversized repeated fields and strings get INVALID_ARGUMENT with a field violation (or NOT_FOUND for an id),
never INTERNAL, and the server logs no traceback for them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from grpc import StatusCode, aio

from reelcast.jobs.status import decode_rpc_error
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.jobs.violations import FieldViolation

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub
from reelcast.server.app import ReelcastServer
from tests.test_job_service import create


def logged_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_list_jobs_with_300000_statuses_is_invalid_argument_without_a_traceback(
    server: ReelcastServer, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    request = job_service_pb2.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_QUEUED] * 300_000)

    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(request)

    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    details = decode_rpc_error(raised.value)
    assert details.code == "E002-INVALID_REQUEST"
    assert [violation.field for violation in details.field_violations] == ["statuses"]
    assert "at most" in details.field_violations[0].description
    assert logged_problems(caplog) == []


async def test_a_status_filter_of_64_entries_is_accepted_and_65_refused(
    server: ReelcastServer, stub: Stub
) -> None:
    statuses = [job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING] * 32

    await stub.ListJobs(job_service_pb2.ListJobsRequest(statuses=statuses))
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(job_service_pb2.ListJobsRequest(statuses=[*statuses, job_pb2.JOB_STATUS_QUEUED]))

    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    assert decode_rpc_error(raised.value).field_violations == (
        FieldViolation("statuses", "must list at most 64 statuses"),
    )


async def test_list_jobs_counts_a_repeated_status_once(server: ReelcastServer, stub: Stub) -> None:
    await server.runner.stop()
    older = await create(stub, "older")
    newer = await create(stub, "newer")
    repeated = [job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_CANCELLED]

    first = await stub.ListJobs(job_service_pb2.ListJobsRequest(statuses=repeated, page_size=1))
    # The token was issued for the same filter, written differently.
    second = await stub.ListJobs(
        job_service_pb2.ListJobsRequest(
            statuses=[job_pb2.JOB_STATUS_CANCELLED, job_pb2.JOB_STATUS_QUEUED],
            page_size=1,
            page_token=first.next_page_token,
        )
    )

    assert [job.id for job in first.jobs] == [newer.id]
    assert [job.id for job in second.jobs] == [older.id]


async def test_an_oversized_page_token_is_invalid_argument(server: ReelcastServer, stub: Stub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.ListJobs(job_service_pb2.ListJobsRequest(page_token="A" * 500_000))

    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    violations = decode_rpc_error(raised.value).field_violations
    assert [violation.field for violation in violations] == ["page_token"]


@pytest.mark.parametrize("job_id", ["a" * 500_000, "../etc/passwd", "job id with spaces"])
async def test_a_malformed_job_id_is_not_found_on_every_job_rpc(
    server: ReelcastServer, stub: Stub, job_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(aio.AioRpcError) as got:
        await stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))
    assert got.value.code() == StatusCode.NOT_FOUND
    with pytest.raises(aio.AioRpcError) as cancelled:
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id))
    assert cancelled.value.code() == StatusCode.NOT_FOUND
    for stream in (
        stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id)),
        stub.ReadJobArtifact(
            job_service_pb2.ReadJobArtifactRequest(job_id=job_id, kind=job_service_pb2.ARTIFACT_KIND_VIDEO)
        ),
    ):
        with pytest.raises(aio.AioRpcError) as streamed:
            async for _ in stream:
                pass
        assert streamed.value.code() == StatusCode.NOT_FOUND
    assert logged_problems(caplog) == []


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff", b"\x0a\x02\xc3\x28"],  # corrupt wire format; job_id holding bytes that are not UTF-8
    ids=["corrupt", "not-utf8"],
)
async def test_a_request_that_does_not_parse_is_invalid_argument_without_a_traceback(
    server: ReelcastServer, channel: aio.Channel, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    get_job: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/reelcast.jobs.v1.JobService/GetJob"
    )
    reflect: aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    )

    with pytest.raises(aio.AioRpcError) as unary:
        await get_job(payload)
    with pytest.raises(aio.AioRpcError) as streamed:
        async for _ in reflect(iter([payload])):
            pass

    for error in (unary.value, streamed.value):
        assert error.code() == StatusCode.INVALID_ARGUMENT
        assert decode_rpc_error(error).code == "E002-INVALID_REQUEST"
        assert "Traceback" not in (error.details() or "")
    assert logged_problems(caplog) == []
