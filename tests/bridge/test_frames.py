"""The streams write each event's frame once for all subscribers (``ProjectedEvent``); those bytes must be
exactly the seed's SSE framing of ``job_event``/``multi_job_event``, for every kind of event."""

from __future__ import annotations

import json

import pytest

from reelcast.bridge.sse import MultiCursor, ProjectedEvent, job_event, multi_job_event
from reelcast.jobs.v1 import job_pb2

EVENTS = [
    job_pb2.JobProgress(
        job_id="j1", sequence=1, kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_QUEUED
    ),
    job_pb2.JobProgress(
        job_id="j1",
        sequence=7,
        kind=job_pb2.EVENT_KIND_STEP_PROGRESS,
        stage="render",
        stage_title="Rendering",
        stage_percent=42.5,
        job_percent=61.25,
        message='frame 75/150 — ünïcode ✓ \u2028 and a "quote"\nnewline',
        correlation_id="demo-42",
    ),
    job_pb2.JobProgress(
        job_id="j1",
        sequence=9,
        kind=job_pb2.EVENT_KIND_JOB_FAILED,
        job_status=job_pb2.JOB_STATUS_FAILED,
        errors=[job_pb2.JobError(code="E304-FFMPEG_RUNTIME", message="x", remediation="y")],
    ),
]
EVENTS[0].time.FromSeconds(1_700_000_000)


@pytest.mark.parametrize("progress", EVENTS, ids=lambda p: job_pb2.EventKind.Name(p.kind))
def test_the_shared_frame_is_the_seed_framing_byte_for_byte(progress: job_pb2.JobProgress) -> None:
    projected = ProjectedEvent(progress)
    assert projected.frame == job_event(progress).encode()
    assert projected.frame.endswith(b"\r\n\r\n") and projected.frame.count(b"\ndata: ") == 1
    data = json.loads(projected.frame.split(b"\r\ndata: ", 1)[1].rstrip(b"\r\n"))
    assert data["correlationId"] == progress.correlation_id
    if progress.message:
        assert data["message"] == progress.message


def test_the_multi_job_frame_carries_the_connections_cursor() -> None:
    cursor = MultiCursor()
    for progress in EVENTS:
        cursor.advance(progress)
        assert ProjectedEvent(progress).multi_frame(cursor) == multi_job_event(progress, cursor).encode()
