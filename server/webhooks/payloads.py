"""The body of one delivery: the seed's SSE ``data:`` of the event plus ``jobId``, ``sequence`` and
``event`` (the SSE event name), so a receiver reads exactly what a browser's stream carries."""

from __future__ import annotations

import orjson

from reelcast.jobs.event_payloads import EVENT_NAMES, event_data
from reelcast.jobs.v1 import job_pb2


def message_id(progress: job_pb2.JobProgress) -> str:
    """``<jobId>_<sequence>``: the same on every retry and replay, so a receiver deduplicates by it."""
    return f"{progress.job_id}_{progress.sequence}"


def delivery_body(progress: job_pb2.JobProgress) -> bytes:
    return orjson.dumps(
        {
            "jobId": progress.job_id,
            "sequence": progress.sequence,
            "event": EVENT_NAMES[progress.kind],
            **event_data(progress),
        }
    )
