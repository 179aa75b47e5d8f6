"""The fan-out baselines publish the bytes reelcast publishes: step-progress events like the bench stage's,
projected by the bridge's own code (``reelcast.bridge.sse``), so every server carries the same payloads."""

from __future__ import annotations

import json
import uuid

from reelcast.bridge.sse import ProjectedEvent, event_data
from reelcast.jobs.v1 import job_pb2


def progress_events(count: int) -> list[job_pb2.JobProgress]:
    """``count`` step-progress events of one running job, as the recorder writes a burst of the bench
    stage's reports."""
    job_id, correlation_id = uuid.uuid4().hex, uuid.uuid4().hex
    events = []
    for index in range(1, count + 1):
        event = job_pb2.JobProgress(
            job_id=job_id,
            sequence=index + 3,
            kind=job_pb2.EVENT_KIND_STEP_PROGRESS,
            job_status=job_pb2.JOB_STATUS_RUNNING,
            job_percent=round(100.0 * index / count, 2),
            message=f"burst {index}",
            correlation_id=correlation_id,
            attempt=1,
            stage="bench",
            stage_title="Bench",
            stage_status=job_pb2.STEP_STATUS_RUNNING,
            stage_percent=round(100.0 * index / count, 2),
        )
        event.time.GetCurrentTime()
        events.append(event)
    return events


def sse_frames(count: int) -> list[bytes]:
    """Whole SSE frames (``event:``, ``id:``, ``data:``), exactly as the bridge frames them."""
    return [ProjectedEvent(event).frame for event in progress_events(count)]


def data_payloads(count: int) -> list[bytes]:
    """The ``data:`` JSON alone, for a server that frames events itself (nchan)."""
    return [json.dumps(event_data(e), separators=(",", ":")).encode() for e in progress_events(count)]
