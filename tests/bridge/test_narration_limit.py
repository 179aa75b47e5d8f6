"""A supplied script is held to the duration limit at creation: its estimated narration time (words per
minute for its language, docs/api.md) past 600 s is a field violation, on gRPC and REST alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from google.rpc import error_details_pb2
from grpc import StatusCode, aio
from grpc_status import rpc_status

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.jobs.validation import estimated_narration_seconds, with_defaults

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

# About 1,000 s of English at the default 160 words per minute, with a 3 s target: the case the issue found.
LONG_ENGLISH = [" ".join(["honeybee"] * 220) for _ in range(12)]
# No spaces at all: the words are counted from the characters, so this cannot pass as 100 one-word scenes.
LONG_UNSPACED = ["蜜蜂" * 900 for _ in range(11)]
SHORT_ENGLISH = ["Bees make honey from nectar.", "The hive keeps it for winter."]


def script_spec(narrations: list[str], language: str = "en") -> job_pb2.JobSpec:
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Bees", language=language),
        plan=job_pb2.Plan(target_duration_seconds=3),
        script=[job_pb2.Scene(narration=text) for text in narrations],
    )


def rest_body(narrations: list[str], language: str = "en") -> dict[str, Any]:
    return {
        "brief": {"topic": "Bees", "language": language},
        "plan": {"targetDurationSeconds": 3},
        "script": [{"narration": text} for text in narrations],
    }


def field_violations(error: aio.AioRpcError) -> tuple[dict[str, str], set[str]]:
    """The BadRequest field violations (field: description) and the ErrorInfo reasons of a gRPC error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, str] = {}
    reasons: set[str] = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.update({v.field: v.description for v in bad_request.field_violations})
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.add(info.reason)
    return found, reasons


@pytest.mark.parametrize(
    ("narrations", "language"), [(LONG_ENGLISH, "en"), (LONG_UNSPACED, "zh")], ids=["english", "unspaced"]
)
async def test_a_script_estimated_past_the_limit_is_invalid_argument_over_grpc(
    stub: JobServiceAsyncStub, narrations: list[str], language: str
) -> None:
    assert estimated_narration_seconds(with_defaults(script_spec(narrations, language))) > 600
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=script_spec(narrations, language)))
    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    violations, reasons = field_violations(raised.value)
    assert reasons == {"E001-INVALID_SPEC"}
    assert "spec.script" in violations, violations
    assert "600" in violations["spec.script"]


@pytest.mark.parametrize(
    ("narrations", "language"), [(LONG_ENGLISH, "en"), (LONG_UNSPACED, "zh")], ids=["english", "unspaced"]
)
async def test_a_script_estimated_past_the_limit_is_a_400_field_violation_over_rest(
    client: httpx.AsyncClient, narrations: list[str], language: str
) -> None:
    response = await client.post("/api/jobs", json=rest_body(narrations, language))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["errorCode"] == "E001-INVALID_SPEC"
    assert problem["correlationId"]
    fields = {violation["field"]: violation["description"] for violation in problem["violations"]}
    assert "script" in fields, fields
    assert "600" in fields["script"]


async def test_a_short_script_with_a_short_target_is_accepted(
    client: httpx.AsyncClient, stub: JobServiceAsyncStub
) -> None:
    created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=script_spec(SHORT_ENGLISH)))
    assert created.job.status == job_pb2.JOB_STATUS_QUEUED
    response = await client.post("/api/jobs", json=rest_body(SHORT_ENGLISH))
    assert response.status_code == 201, response.text


def test_a_slower_voice_makes_the_same_script_longer() -> None:
    fast = with_defaults(script_spec(SHORT_ENGLISH))
    slow = with_defaults(script_spec(SHORT_ENGLISH))
    slow.voice.rate = 80
    assert estimated_narration_seconds(slow) == pytest.approx(2 * estimated_narration_seconds(fast))
