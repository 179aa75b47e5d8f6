"""How a job ends: the event kinds that close its event log, and the statuses it can no longer leave."""

from __future__ import annotations

from reelcast.jobs.v1 import job_pb2

# A job's log ends with exactly one of these; a cancelled job ends with EVENT_KIND_JOB_FAILED. A stream of a
# deleted job ends with EVENT_KIND_JOB_DELETED, which no log holds.
TERMINAL_KINDS = frozenset(
    {job_pb2.EVENT_KIND_JOB_COMPLETED, job_pb2.EVENT_KIND_JOB_FAILED, job_pb2.EVENT_KIND_JOB_DELETED}
)
TERMINAL_STATUSES = frozenset(
    {job_pb2.JOB_STATUS_SUCCEEDED, job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED}
)


def is_terminal(event: job_pb2.JobProgress) -> bool:
    """Whether ``event`` ends a stream (``EVENT_KIND_JOB_COMPLETED``, ``EVENT_KIND_JOB_FAILED`` or
    ``EVENT_KIND_JOB_DELETED``)."""
    return event.kind in TERMINAL_KINDS
