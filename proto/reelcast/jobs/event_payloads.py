"""A job event as JSON: the seed's SSE ``event:`` name and ``data:`` payload of one ``JobProgress``.

Pure (an event depends on its ``JobProgress`` alone), so every subscriber of the log projects it the same
way: the bridge's SSE streams (bridge/sse.py) and the server's webhook deliveries (server/webhooks/).
"""

from __future__ import annotations

from typing import Any

from reelcast.jobs.resources import (
    JOB_STATUS_WORDS,
    STEP_STATUS_WORDS,
    errors_json,
    job_json,
    number,
    output_json,
    preview_json,
    timestamp,
)
from reelcast.jobs.v1 import job_pb2

EVENT_NAMES = {
    job_pb2.EVENT_KIND_JOB_STATUS: "job-status",
    # The seed's five events stay the contract: a retry is the job's status going back to Queued.
    job_pb2.EVENT_KIND_JOB_RETRIED: "job-status",
    job_pb2.EVENT_KIND_STEP_STATUS: "step-status",
    job_pb2.EVENT_KIND_STEP_PROGRESS: "step-progress",
    job_pb2.EVENT_KIND_JOB_COMPLETED: "job-completed",
    job_pb2.EVENT_KIND_JOB_FAILED: "job-failed",
    job_pb2.EVENT_KIND_RESYNC: "resync",
    # The job was deleted (DeleteJob): the stream's last event, a job-failed that says so.
    job_pb2.EVENT_KIND_JOB_DELETED: "job-failed",
}


def event_data(progress: job_pb2.JobProgress) -> dict[str, Any]:
    """The JSON ``data:`` of one event. The seed's fields come first; ``correlationId`` is on every event."""
    kind = progress.kind
    data: dict[str, Any]
    if kind == job_pb2.EVENT_KIND_JOB_STATUS:
        data = {"status": JOB_STATUS_WORDS[progress.job_status]}
        if progress.HasField("queue_position"):  # a waiting job's place (docs/api.md)
            data["queuePosition"] = progress.queue_position
            if progress.HasField("estimated_start"):
                data["estimatedStartSeconds"] = number(progress.estimated_start.ToNanoseconds() / 1e9)
    elif kind == job_pb2.EVENT_KIND_JOB_RETRIED:
        data = {"status": JOB_STATUS_WORDS[progress.job_status], "retried": True, "attempt": progress.attempt}
    elif kind == job_pb2.EVENT_KIND_STEP_STATUS:
        data = {"step": progress.stage_title, "status": STEP_STATUS_WORDS[progress.stage_status]}
    elif kind == job_pb2.EVENT_KIND_STEP_PROGRESS:
        data = {"step": progress.stage_title, "progressPct": number(progress.stage_percent)}
        if progress.HasField("preview"):  # a longer preview of the video (docs/api.md#previews)
            data["preview"] = preview_json(progress.job_id, progress.preview)
    elif kind == job_pb2.EVENT_KIND_JOB_COMPLETED:
        data = {"status": "Succeeded", "output": output_json(progress.job_id, progress.output)}
    elif kind == job_pb2.EVENT_KIND_JOB_FAILED:
        data = {"status": "Failed", "errors": errors_json(progress.errors)}
    elif kind == job_pb2.EVENT_KIND_JOB_DELETED:
        data = {"status": "Failed", "errors": [], "deleted": True}
    elif kind == job_pb2.EVENT_KIND_RESYNC:
        data = {"status": JOB_STATUS_WORDS[progress.job_status], "job": job_json(progress.snapshot)}
    else:
        raise ValueError(f"unknown event kind {kind}")
    data["correlationId"] = progress.correlation_id
    if progress.trace_id:  # beyond the seed's fields (docs/observability.md#traces)
        data["traceId"] = progress.trace_id
    if progress.stage and kind != job_pb2.EVENT_KIND_RESYNC:
        data["stepName"] = progress.stage
    data["jobProgressPct"] = number(progress.job_percent)
    if progress.message:
        data["message"] = progress.message
    if progress.HasField("eta"):
        data["etaSeconds"] = progress.eta.seconds
    time = timestamp(progress, "time")
    if time:
        data["time"] = time
    return data
