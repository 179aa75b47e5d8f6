"""The resumption logic of ``watch_job``: its cursor and reconnection budget, kept apart from the I/O that
``AsyncClient.watch_job`` does (which the sync client runs as well).

A watch keeps the sequence of the last event it delivered. When the stream breaks for a resumable reason
(:func:`reelcast.client.retry.is_resumable`), it reconnects with ``after_sequence`` set to that cursor, so the
server replays exactly what was missed. Every event is delivered once: one whose sequence is not past the
cursor is dropped. An ``EVENT_KIND_RESYNC`` (the cursor fell into trimmed history) is delivered like any
event; its sequence is where the stream continues, so it becomes the cursor. The watch ends after the
terminal event.

``watch_jobs`` (WatchJobs: every job of the caller) resumes the same way with the opaque cursor of the last
response it received (:class:`FeedWatchState`); that stream has no end.
"""

from __future__ import annotations

import time

import grpc

from reelcast.client.errors import ReelcastError, UnavailableError
from reelcast.client.retry import RetryPolicy, is_resumable
from reelcast.jobs.terminal import is_terminal
from reelcast.jobs.v1 import job_pb2, job_service_pb2


class Reconnection:
    """The reconnection budget of one resumable stream: attempts and time since it broke."""

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry
        self.reconnects = 0  # in total, for callers and tests that want to know
        self._failures = 0  # consecutive, since the last delivered event
        self._broken_since: float | None = None

    def delivered(self) -> None:
        """Something arrived: the stream works again, the budget is full again."""
        self._failures = 0
        self._broken_since = None

    def delay_after(self, error: ReelcastError) -> float:
        """How long to wait before reconnecting after ``error``; raises ``error`` when it is final or the
        retry budget (attempts, or time since the stream broke) is spent."""
        if not is_resumable(error):
            raise error
        now = time.monotonic()
        if self._broken_since is None:
            self._broken_since = now
        self._failures += 1
        if self._failures > self.retry.max_attempts:
            raise error
        delay = self.retry.backoff(self._failures)
        if self.retry.max_elapsed is not None and now + delay - self._broken_since > self.retry.max_elapsed:
            raise error
        self.reconnects += 1
        return delay


class WatchState(Reconnection):
    """Cursor and reconnection budget of one ``watch_job``."""

    def __init__(self, job_id: str, after_sequence: int, retry: RetryPolicy) -> None:
        if after_sequence < 0:
            raise ValueError("after_sequence must be 0 or more")
        super().__init__(retry)
        self.job_id = job_id
        self.cursor = after_sequence
        self.finished = False

    def request(self) -> job_service_pb2.WatchJobRequest:
        return job_service_pb2.WatchJobRequest(job_id=self.job_id, after_sequence=self.cursor)

    def accept(self, event: job_pb2.JobProgress) -> bool:
        """Whether to deliver ``event``; moves the cursor and resets the reconnection budget if so."""
        if event.sequence <= self.cursor:
            return False
        self.cursor = event.sequence
        self.finished = is_terminal(event)
        self.delivered()
        return True

    def ended_early(self, correlation_id: str) -> ReelcastError:
        """The error of a stream the server closed before the terminal event (treated as a disconnection)."""
        return UnavailableError(
            grpc.StatusCode.UNAVAILABLE,
            f"the event stream of job {self.job_id} ended after sequence {self.cursor}, before the job "
            "finished",
            correlation_id=correlation_id,
        )


class FeedWatchState(Reconnection):
    """Cursor, filter and reconnection budget of one ``watch_jobs``."""

    def __init__(self, request: job_service_pb2.WatchJobsRequest, retry: RetryPolicy) -> None:
        super().__init__(retry)
        self._request = request
        self._opened = False

    @property
    def cursor(self) -> str:
        """Where a reconnection resumes: the cursor of the last response received."""
        return self._request.cursor

    def request(self) -> job_service_pb2.WatchJobsRequest:
        return self._request

    def accept(self, response: job_service_pb2.WatchJobsResponse) -> bool:
        """Whether to deliver ``response``: one with an event, and the first of all (no event: it says where
        the stream starts), not that of a reconnection. Moves the cursor either way."""
        self._request.cursor = response.cursor
        self.delivered()
        first, self._opened = not self._opened, True
        return first or response.HasField("event")
