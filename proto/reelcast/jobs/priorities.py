"""The words of ``JobSpec.priority`` (``high``, ``normal``, ``low``), shared by REST, the CLI and the client.

A priority orders a job among its owner's waiting jobs only; between users the scheduler is fair
(docs/operations.md, "Fair scheduling")."""

from __future__ import annotations

from reelcast.jobs.v1 import job_pb2

# Highest first: the order in which one user's waiting jobs start.
PRIORITIES: dict[str, job_pb2.JobPriority.ValueType] = {
    "high": job_pb2.JOB_PRIORITY_HIGH,
    "normal": job_pb2.JOB_PRIORITY_NORMAL,
    "low": job_pb2.JOB_PRIORITY_LOW,
}
PRIORITY_WORDS = tuple(PRIORITIES)


def priority_word(priority: int) -> str:
    """The word of a priority; unspecified (and any value a newer client sent) is normal."""
    return next((word for word, value in PRIORITIES.items() if value == priority), "normal")
