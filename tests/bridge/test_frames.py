"""The bridge frames SSE itself: each event's frame once for all subscribers (``ProjectedEvent``), the
``: ping`` heartbeats in bridge/sse.py. sse-starlette, a dev dependency only, is the oracle: every frame must
be byte for byte what its ``ServerSentEvent`` encodes, for every kind of event and for both pings."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest
from sse_starlette.event import ServerSentEvent

from reelcast.bridge.sse import EVENT_NAMES, MultiCursor, ProjectedEvent, event_data, ping_frame
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


def oracle_job_event(progress: job_pb2.JobProgress) -> bytes:
    """sse-starlette's framing of the single-job event: ``id:`` is the sequence."""
    return ServerSentEvent(
        data=orjson.dumps(event_data(progress)).decode(),
        event=EVENT_NAMES[progress.kind],
        id=str(progress.sequence),
    ).encode()


def oracle_multi_job_event(progress: job_pb2.JobProgress, cursor: MultiCursor) -> bytes:
    """sse-starlette's framing of the multi-job event: ``jobId`` added, ``id:`` the cursor."""
    return ServerSentEvent(
        data=orjson.dumps({"jobId": progress.job_id, **event_data(progress)}).decode(),
        event=EVENT_NAMES[progress.kind],
        id=cursor.encode(),
    ).encode()


@pytest.mark.parametrize("progress", EVENTS, ids=lambda p: job_pb2.EventKind.Name(p.kind))
def test_the_shared_frame_is_the_seed_framing_byte_for_byte(progress: job_pb2.JobProgress) -> None:
    projected = ProjectedEvent(progress)
    assert projected.frame == oracle_job_event(progress)
    assert projected.frame.endswith(b"\r\n\r\n") and projected.frame.count(b"\ndata: ") == 1
    data = json.loads(projected.frame.split(b"\r\ndata: ", 1)[1].rstrip(b"\r\n"))
    assert data["correlationId"] == progress.correlation_id
    if progress.message:
        assert data["message"] == progress.message


def test_the_multi_job_frame_carries_the_connections_cursor() -> None:
    cursor = MultiCursor()
    for progress in EVENTS:
        cursor.advance(progress)
        assert ProjectedEvent(progress).multi_frame(cursor) == oracle_multi_job_event(progress, cursor)


@pytest.mark.parametrize("retry_ms", [None, 3000, 0, 86_400_000])
def test_the_ping_comment_is_sse_starlettes_byte_for_byte(retry_ms: int | None) -> None:
    assert ping_frame(retry_ms) == ServerSentEvent(comment="ping", retry=retry_ms).encode()


def test_the_bridge_serves_without_sse_starlette() -> None:
    # A fresh interpreter: this one has sse-starlette loaded by the oracle above.
    probe = (
        "import sys\n"
        "import reelcast.bridge.app, reelcast.bridge.server, reelcast.bridge.eventstream\n"
        "print('sse_starlette' in sys.modules)\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False", "the bridge imports sse-starlette, a dev dependency only"
