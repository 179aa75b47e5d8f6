"""The SSE endpoints: ``/api/jobs/{id}/events`` (one job) and ``/api/events`` (many jobs, one connection).

Everything that can fail is checked before the response starts (an unknown job is a 404 JSON error, a junk
``Last-Event-ID`` a 400). After that the stream only ends: at the terminal event, or when the upstream
breaks, in which case the browser reconnects with ``Last-Event-ID`` and resumes exactly.

sse-starlette frames the events and sends the periodic ``: ping``; the first ping is our first event, so it
goes out at once together with the ``retry:`` hint. Nothing here compresses, and the responses say
``Cache-Control: no-store`` and ``X-Accel-Buffering: no`` so proxies neither cache nor buffer them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reelcast.bridge.auth import STREAM_TOKEN_PREFIX, credential_var
from reelcast.bridge.limits import SlotHoldingResponse
from reelcast.bridge.metrics import SSE_CONNECTIONS, SSE_DELIVERY_LATENCY, SSE_EVENTS_SENT
from reelcast.bridge.problems import ApiError, Violation
from reelcast.bridge.rest import fetch_job_and_caller
from reelcast.bridge.sse import (
    InvalidEventIdError,
    MultiCursor,
    ProjectedEvent,
    parse_sequence,
    ping,
)
from reelcast.bridge.state import (
    BridgeState,
    bridge_state,
    caller_of,
    checked_job_id,
    grpc_metadata,
    is_job_id,
)
from reelcast.bridge.upstream import FeedEndedError, JobFeed, SubscriberOverflowError, Subscription
from reelcast.jobs.v1 import job_service_pb2
from reelcast.server import errors

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def resume_cursor(request: Request) -> str:
    """The browser's automatic ``Last-Event-ID`` wins over ``?lastEventId=``: after a reconnect the URL still
    carries the first cursor, the header the latest."""
    return request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""


def _event_stream(state: BridgeState, chunks: AsyncGenerator[bytes], user: str, kind: str) -> Response:
    """The SSE response, holding one of ``user``'s stream slots until it ends (429 if none is free).

    ``chunks`` are pre-framed SSE bytes, each holding every event that was waiting: one send per wake-up.
    """

    async def framed() -> AsyncIterator[ServerSentEvent | bytes]:
        yield ping(state.settings.retry_ms)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    state.slots.acquire(user)
    response = EventSourceResponse(
        framed(),
        headers=SSE_HEADERS,
        ping=state.settings.heartbeat_seconds,
        ping_message_factory=ping,
        send_timeout=state.settings.send_timeout_seconds,
    )
    return _CountedResponse(SlotHoldingResponse(response, state.slots, user), kind)


class _CountedResponse(Response):
    """Counts an SSE response in ``reelcast_sse_connections`` for as long as it runs."""

    def __init__(self, response: Response, kind: str) -> None:
        # Deliberately not calling Response.__init__: this only wraps ``response``, which sends everything.
        self.response = response
        self.gauge = SSE_CONNECTIONS.labels(stream=kind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.gauge.inc()
        try:
            await self.response(scope, receive, send)
        finally:
            self.gauge.dec()


def _delivered(batch: list[ProjectedEvent], kind: str) -> None:
    """Counts a batch about to be written, and how long after its making each event goes out."""
    SSE_EVENTS_SENT.labels(stream=kind).inc(len(batch))
    now = time.time()
    observe = SSE_DELIVERY_LATENCY.observe
    for event in batch:
        if event.stamp:
            observe(max(0.0, now - event.stamp))


async def _authorized_feed(request: Request, state: BridgeState, job_id: str) -> tuple[JobFeed, str]:
    """The caller's feed of ``job_id`` and the caller's user name; 404 (or 401, or any error) if the server
    does not let the caller see the job.

    A live feed of the same credential already is the server's yes: its ``WatchJob`` runs on that credential,
    which the auth middleware re-checks at least once a second, and it ends when the key is revoked. So only
    the first viewer of a job asks ``GetJob``, not each of 1,000 viewers connecting at once. Stream tokens
    always ask: their expiry is checked by the server alone.
    """
    if not credential_var.get().startswith(STREAM_TOKEN_PREFIX):
        live = state.hub.live_feed(job_id)
        if live is not None and live.caller is not None:
            return live, live.caller
    _job, user = await fetch_job_and_caller(request, job_id)
    feed = state.hub.feed(job_id)
    feed.caller = user
    return feed, user


async def job_events(request: Request) -> Response:
    state = bridge_state(request)
    job_id = checked_job_id(request)
    try:
        after = parse_sequence(resume_cursor(request) or "0")
    except InvalidEventIdError:
        raise ApiError(
            errors.INVALID_EVENT_ID,
            "Last-Event-ID must be the decimal id of an event of this stream.",
            [Violation("Last-Event-ID", "must be a whole number")],
        ) from None
    # 404 (or 401, or any error) before the stream starts. The feed is the caller's own: it watches with the
    # caller's credential, so what it replays is exactly what WatchJob lets this caller see.
    feed, user = await _authorized_feed(request, state, job_id)
    subscription = feed.follow(after)

    async def chunks() -> AsyncGenerator[bytes]:
        async with contextlib.aclosing(subscription.batches()) as batches:
            try:
                async for batch in batches:
                    _delivered(batch, "job")
                    yield b"".join([event.frame for event in batch])
            except (FeedEndedError, SubscriberOverflowError):
                return  # the response ends; the client resumes from its last id

    return _event_stream(state, chunks(), user, "job")


async def _stream_job_ids(request: Request, state: BridgeState) -> tuple[list[str], str]:
    """The jobs of a multi-job stream and the caller: ``?jobs=`` (each checked with the caller's credential,
    404 if unknown or not the caller's), else the caller's newest jobs listed now. Jobs created later join on
    the next connection."""
    limit = state.settings.max_stream_jobs
    raw = request.query_params.get("jobs")
    if raw is None:
        call = state.jobs.ListJobs(job_service_pb2.ListJobsRequest(page_size=limit), metadata=grpc_metadata())
        reply = await call
        return [job.id for job in reply.jobs], await caller_of(call)
    job_ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not job_ids or len(job_ids) > limit:
        raise ApiError(
            errors.INVALID_REQUEST,
            f"jobs must list 1 to {limit} job ids.",
            [Violation("jobs", f"must list 1 to {limit} comma-separated job ids")],
        )
    user = ""
    for job_id in job_ids:
        if not is_job_id(job_id):
            raise ApiError(errors.JOB_NOT_FOUND, "No job with this id.")
        _feed, user = await _authorized_feed(request, state, job_id)
    return job_ids, user


async def events(request: Request) -> Response:
    state = bridge_state(request)
    try:
        cursor = MultiCursor.decode(resume_cursor(request))
    except InvalidEventIdError:
        raise ApiError(
            errors.INVALID_EVENT_ID,
            "Last-Event-ID must be an id of this stream.",
            [Violation("Last-Event-ID", "is not a cursor issued by /api/events")],
        ) from None
    job_ids, user = await _stream_job_ids(request, state)
    # Only the jobs this caller may see stay in the cursor: a cursor can never name, or carry forward, a job
    # that the server did not just authorize for this caller.
    cursor = cursor.restricted_to(job_ids)
    positions = {job_id: cursor.position(job_id) for job_id in job_ids}
    feeds = [(state.hub.feed(job_id), positions[job_id][0]) for job_id in job_ids if not positions[job_id][1]]
    return _event_stream(state, _merged(Subscription(feeds), cursor), user, "multi")


async def _merged(subscription: Subscription, cursor: MultiCursor) -> AsyncGenerator[bytes]:
    """Interleaves the jobs' events as they arrive; each event's id is the cursor including it."""
    async with contextlib.aclosing(subscription.batches()) as batches:
        try:
            async for batch in batches:
                _delivered(batch, "multi")
                frames = []
                for event in batch:
                    cursor.advance(event.progress)
                    frames.append(event.multi_frame(cursor))
                yield b"".join(frames)
        except (FeedEndedError, SubscriberOverflowError):
            return  # one job's upstream broke: end, the client resumes every job exactly
