"""Errors never carry a traceback, a host path or another user's data: fuzzed input over HTTP and gRPC, an
unexpected failure (E500-INTERNAL with the correlation id, details only in the log), hostile correlation
ids."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.security.conftest import Secured, bearer, rpc_code

PATHS = [
    "/api/jobs",
    "/api/jobs/{id}",
    "/api/jobs/{id}/events",
    "/api/jobs/{id}/output",
    "/api/jobs/{id}/failure-details",
    "/api/jobs/{id}/cancel",
    "/api/jobs/{id}/stream-token",
    "/api/events",
    "/api/session",
    "/login",
    "/api/stages",
]
junk = st.text(max_size=60)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def _assert_clean(text: str, secured: Secured, foreign_job_id: str) -> None:
    assert "Traceback" not in text
    assert str(secured.data_dir) not in text
    assert str(secured.data_dir.parent) not in text
    assert foreign_job_id not in text
    assert "Alice's secret" not in text


async def _alice_job(secured: Secured) -> job_pb2.Job:
    job = await secured.create_job("alice", "Alice's secret")
    await secured.finish("alice", job.id)
    return job


async def test_fuzzed_http_requests_never_leak(secured: Secured) -> None:
    alice_job = await _alice_job(secured)
    key = secured.keys["bob"]

    @given(
        path=st.sampled_from(PATHS),
        job_id=st.one_of(junk, st.just(alice_job.id), st.just(alice_job.id + "x")),
        method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
        query=st.dictionaries(
            st.sampled_from(["jobs", "token", "lastEventId", "pageSize", "status", "key"]), junk
        ),
        headers=st.dictionaries(
            st.sampled_from(["Last-Event-ID", "X-Correlation-ID", "Range", "Content-Type", "Origin"]),
            header_text,
        ),
        body=st.one_of(st.binary(max_size=200), st.just(b'{"brief": {"topic": "x"}}')),
    )
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(
        path: str, job_id: str, method: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> None:
        url = path.replace("{id}", quote(job_id, safe="") or "x")
        with httpx.Client(base_url=secured.base_url, timeout=10) as client:
            sendable = {name: value.strip() for name, value in headers.items() if value.strip()}
            all_headers = {"Authorization": f"Bearer {key}", **sendable}
            try:
                with client.stream(method, url, params=query, headers=all_headers, content=body) as response:
                    text = (
                        response.read().decode("utf-8", "replace")
                        if "event-stream" not in response.headers.get("content-type", "")
                        else next(response.iter_text(), "")
                    )
            except httpx.ReadTimeout:
                return
        assert response.status_code < 500 or response.json()["errorCode"] in ("E013-UPSTREAM_UNAVAILABLE",), (
            text
        )
        _assert_clean(text + str(response.headers), secured, alice_job.id)

    await asyncio.to_thread(fuzz)


async def test_fuzzed_grpc_requests_never_leak(secured: Secured) -> None:
    alice_job = await _alice_job(secured)
    target, key = secured.server.target, secured.keys["bob"]

    @given(
        job_id=st.one_of(junk, st.just(alice_job.id)),
        after=st.integers(min_value=-5, max_value=10**9),
        kind=st.integers(min_value=0, max_value=5),
        offset=st.integers(min_value=-5, max_value=10**12),
        page_token=junk,
        correlation=header_text,
    )
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(job_id: str, after: int, kind: int, offset: int, page_token: str, correlation: str) -> None:
        metadata = (*bearer(key), ("x-correlation-id", correlation))
        with grpc.insecure_channel(target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            calls: list[Any] = [
                lambda: stub.GetJob(
                    job_service_pb2.GetJobRequest(job_id=job_id), metadata=metadata, timeout=10
                ),
                lambda: stub.CancelJob(
                    job_service_pb2.CancelJobRequest(job_id=job_id), metadata=metadata, timeout=10
                ),
                lambda: stub.ListJobs(
                    job_service_pb2.ListJobsRequest(page_token=page_token), metadata=metadata, timeout=10
                ),
                lambda: list(
                    stub.WatchJob(
                        job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after),
                        metadata=metadata,
                        timeout=10,
                    )
                ),
                lambda: list(
                    stub.ReadJobArtifact(
                        job_service_pb2.ReadJobArtifactRequest(job_id=job_id, kind=kind, offset=offset),  # type: ignore[arg-type]
                        metadata=metadata,
                        timeout=10,
                    )
                ),
            ]
            for call in calls:
                try:
                    text = str(call())
                except grpc.RpcError as error:
                    failed: Any = error
                    text = f"{failed.code()} {failed.details()} {failed.trailing_metadata()}"
                assert "UNKNOWN" not in text and "StatusCode.INTERNAL" not in text
                _assert_clean(text, secured, alice_job.id)

    await asyncio.to_thread(fuzz)


async def test_an_unexpected_failure_is_e500_with_the_correlation_id_and_details_only_in_the_log(
    secured: Secured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    job = await _alice_job(secured)
    secret = f"disk exploded at {secured.data_dir}/reelcast.db"

    async def broken(job_id: str) -> job_pb2.Job:
        raise RuntimeError(secret)

    monkeypatch.setattr(secured.server.store, "get_job", broken)
    caplog.set_level(logging.ERROR)
    metadata = (*bearer(secured.keys["alice"]), ("x-correlation-id", "trace-me-42"))
    with pytest.raises(aio.AioRpcError) as failure:
        await secured.stub.GetJob(job_service_pb2.GetJobRequest(job_id=job.id), metadata=metadata)
    assert rpc_code(failure.value) == (grpc.StatusCode.INTERNAL, "E500-INTERNAL")
    assert secret not in (failure.value.details() or "") and "RuntimeError" not in (
        failure.value.details() or ""
    )
    with pytest.raises(aio.AioRpcError):
        async for _ in secured.stub.WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job.id), metadata=metadata
        ):
            pass
    response = await secured.http("alice").get(
        f"/api/jobs/{job.id}", headers={"X-Correlation-ID": "trace-me-43"}
    )
    assert response.status_code == 500
    body = response.json()
    assert body["errorCode"] == "E500-INTERNAL" and body["correlationId"] == "trace-me-43"
    assert secret not in response.text and "Traceback" not in response.text
    assert any(
        secret in (record.exc_text or str(record.exc_info)) or "trace-me-42" in record.getMessage()
        for record in caplog.records
    )


async def test_a_malformed_correlation_id_is_replaced_and_never_logged(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hostile = "evil\r\nforged-log-line rck_00000000_secret"
    response = await secured.http("alice").get(
        "/api/jobs", headers={"X-Correlation-ID": hostile.replace("\r\n", " ")}
    )
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] != hostile.replace("\r\n", " ")
    metadata = (*bearer(secured.keys["alice"]), ("x-correlation-id", "bad id with spaces <script>"))
    call = secured.stub.ListJobs(job_service_pb2.ListJobsRequest(), metadata=metadata)
    await call
    echoed = dict(await call.initial_metadata())["x-correlation-id"]
    assert echoed != "bad id with spaces <script>" and "<" not in echoed
    assert all(
        "<script>" not in record.getMessage() and "forged-log-line" not in record.getMessage()
        for record in caplog.records
    )
