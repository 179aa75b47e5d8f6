"""A job's place in its trace: the span that created it (kept in ``Job.traceparent``, a W3C ``traceparent``),
and the span its runner opens around one attempt.

The job span continues the creating request's trace, so that its events, log lines and spans share one trace
id with the request, and links to the creating span: that span ended when CreateJob answered, so nothing
stays open while the job waits, maybe for hours, maybe on another worker (NATS).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from reelcast.jobs.tracing import SpanHandle, parse_traceparent, span, trace_id_of
from reelcast.jobs.v1 import job_pb2


def job_trace_id(job: job_pb2.Job) -> str:
    """The job's trace id (what its events and log lines carry), empty for a job created outside any trace."""
    return trace_id_of(job.traceparent)


@contextlib.contextmanager
def job_span(job: job_pb2.Job) -> Iterator[SpanHandle]:
    """The span of one attempt at ``job``: in the creating span's trace, linked to that span."""
    creating = parse_traceparent(job.traceparent)
    attributes: dict[str, str | int] = {"reelcast.job_id": job.id, "reelcast.attempt": job.attempt + 1}
    with span("job", parent=creating, links=[creating] if creating else [], attributes=attributes) as opened:
        yield opened
