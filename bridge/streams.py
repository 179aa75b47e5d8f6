"""The SSE endpoints: ``/api/jobs/{id}/events`` (one job) and ``/api/events`` (many jobs, one connection:
the listed ``?jobs=``, or without a list every job of the caller, bridge/alljobs.py).

Everything that can fail is checked before the response starts (an unknown job is a 404 JSON error, a junk
``Last-Event-ID`` a 400). After that the stream only ends: at the terminal event, or when the upstream
breaks, in which case the browser reconnects with ``Last-Event-ID`` and resumes exactly.

bridge/eventstream.py writes the stream and its periodic ``: ping``; the first ping goes out at once together
with the ``retry:`` hint. Nothing here compresses, and the responses say ``Cache-Control: no-store`` and
``X-Accel-Buffering: no`` so proxies neither cache nor buffer them.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from starlette.requests import Request
from starlette.responses import Response

from reelcast.bridge.alljobs import AllJobsSubscription, OpeningMark, opened
from reelcast.bridge.auth import STREAM_TOKEN_PREFIX, credential_var
from reelcast.bridge.eventstream import EventSource, EventStreamResponse
from reelcast.bridge.metrics import DELIVERY
from reelcast.bridge.problems import ApiError, problem_from_rpc_error
from reelcast.bridge.rest import fetch_job_and_caller, label_selector_from_query, status_filter_from_query
from reelcast.bridge.sse import (
    InvalidEventIdError,
    MultiCursor,
    ProjectedEvent,
    parse_sequence,
)
from reelcast.bridge.state import (
    BridgeState,
    bridge_state,
    caller_of,
    checked_job_id,
    grpc_metadata,
    is_job_id,
)
from reelcast.bridge.upstream import JobFeed, Subscription
from reelcast.jobs import errors
from reelcast.jobs.v1 import job_service_pb2
from reelcast.jobs.violations import FieldViolation


def resume_cursor(request: Request) -> str:
    """The browser's automatic ``Last-Event-ID`` wins over ``?lastEventId=``: after a reconnect the URL still
    carries the first cursor, the header the latest."""
    return request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""


def _event_stream(
    state: BridgeState,
    subscription: EventSource,
    encode: Callable[[list[ProjectedEvent]], bytes],
    user: str,
    kind: str,
) -> Response:
    """The SSE response, holding one of ``user``'s stream slots until it ends (429 if none is free)."""
    try:
        state.slots.acquire(user)
    except ApiError:
        subscription.close()
        raise
    settings = state.settings
    return EventStreamResponse(
        subscription,
        encode,
        kind=kind,
        retry_ms=settings.retry_ms,
        heartbeat_seconds=settings.heartbeat_seconds,
        send_timeout_seconds=settings.send_timeout_seconds,
        on_close=lambda: state.slots.release(user),
    )


def _job_frames(batch: list[ProjectedEvent]) -> bytes:
    DELIVERY.delivered("job", batch)
    return b"".join([event.frame for event in batch])


async def _authorized_feed(
    request: Request, state: BridgeState, job_id: str, after_sequence: int = 0
) -> tuple[JobFeed, str]:
    """The caller's feed of ``job_id`` and the caller's user name; 404 (or 401, or any error) if the server
    does not let the caller see the job.

    A live feed of the same credential already is the server's yes: its ``WatchJob`` runs on that credential,
    which the auth middleware re-checks at least once a second, and it ends when the key is revoked. So only
    the first viewer of a job asks ``GetJob``, not each of 1,000 viewers connecting at once. Stream tokens
    always ask: their expiry is checked by the server alone.
    """
    if not credential_var.get().startswith(STREAM_TOKEN_PREFIX):
        live = state.hub.live_feed(job_id, after_sequence)
        if live is not None and live.caller is not None:
            return live, live.caller
    job, user = await fetch_job_and_caller(request, job_id)
    feed = state.hub.feed(job_id, job.last_sequence)
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
            [FieldViolation("Last-Event-ID", "must be a whole number")],
        ) from None
    # 404 (or 401, or any error) before the stream starts. The feed is the caller's own: it watches with the
    # caller's credential, so what it replays is exactly what WatchJob lets this caller see.
    feed, user = await _authorized_feed(request, state, job_id, after)
    return _event_stream(state, feed.follow(after), _job_frames, user, "job")


async def all_job_events(request: Request) -> Response:
    """``/api/events`` without ``jobs``: every event of the caller's jobs, those created later too, through
    one upstream WatchJobs (bridge/alljobs.py); ``label=`` and ``status=`` filter it as they filter the
    listing. The server checks the cursor: a junk one is a 400 ``E009`` before the stream starts."""
    state = bridge_state(request)
    watch = job_service_pb2.WatchJobsRequest(
        cursor=resume_cursor(request).strip(),
        label_selector=label_selector_from_query(request),
        statuses=status_filter_from_query(request),
    )
    call = state.jobs.WatchJobs(watch, metadata=grpc_metadata())
    try:
        start = await opened(call)
    except grpc.RpcError as refused:
        call.cancel()
        if problem_from_rpc_error(refused).error is errors.INVALID_WATCH_CURSOR:
            # The SSE surface's code for a bad Last-Event-ID, as on the other streams.
            raise _invalid_multi_id() from None
        raise
    except BaseException:
        call.cancel()
        raise
    return _event_stream(state, AllJobsSubscription(call, start), _all_frames, await caller_of(call), "all")


def _all_frames(batch: list[ProjectedEvent]) -> bytes:
    DELIVERY.delivered("all", [event for event in batch if not isinstance(event, OpeningMark)])
    return b"".join([event.frame for event in batch])


async def _stream_job_ids(request: Request, state: BridgeState) -> tuple[list[str], str]:
    """The jobs of a multi-job stream (``?jobs=``) and the caller: each checked with the caller's
    credential, 404 if unknown or not the caller's."""
    limit = state.settings.max_stream_jobs
    raw = request.query_params.get("jobs", "")
    job_ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not job_ids or len(job_ids) > limit:
        raise ApiError(
            errors.INVALID_REQUEST,
            f"jobs must list 1 to {limit} job ids.",
            [FieldViolation("jobs", f"must list 1 to {limit} comma-separated job ids")],
        )
    user = ""
    for job_id in job_ids:
        if not is_job_id(job_id):
            raise ApiError(errors.JOB_NOT_FOUND, "No job with this id.")
        _feed, user = await _authorized_feed(request, state, job_id)
    return job_ids, user


async def events(request: Request) -> Response:
    if request.query_params.get("jobs") is None:
        return await all_job_events(request)
    state = bridge_state(request)
    try:
        cursor = MultiCursor.decode(resume_cursor(request))
    except InvalidEventIdError:
        raise _invalid_multi_id() from None
    job_ids, user = await _stream_job_ids(request, state)
    # Only the jobs this caller may see stay in the cursor: a cursor can never name, or carry forward, a job
    # that the server did not just authorize for this caller.
    cursor = cursor.restricted_to(job_ids)
    feeds: list[tuple[JobFeed, int]] = []
    for job_id in job_ids:
        after, ended = cursor.position(job_id)
        if not ended:
            feeds.append((state.hub.feed(job_id), after))
            continue
        # The cursor delivered the job's end; only the server knows whether its log went on since (RetryJob),
        # and a job asked for by name again is likely one that did (the page follows a job it retried).
        job, _user = await fetch_job_and_caller(request, job_id)
        if job.last_sequence > after:
            cursor.reopen(job_id)
            feeds.append((state.hub.feed(job_id, job.last_sequence), after))
    return _event_stream(state, Subscription(feeds), _multi_frames(cursor), user, "multi")


def _invalid_multi_id() -> ApiError:
    return ApiError(
        errors.INVALID_EVENT_ID,
        "Last-Event-ID must be an id of this stream.",
        [FieldViolation("Last-Event-ID", "is not a cursor issued by /api/events")],
    )


def _multi_frames(cursor: MultiCursor) -> Callable[[list[ProjectedEvent]], bytes]:
    """Frames the jobs' events as they arrive; each event's id is the connection's cursor including it."""

    def encode(batch: list[ProjectedEvent]) -> bytes:
        DELIVERY.delivered("multi", batch)
        frames = []
        for event in batch:
            cursor.advance(event.progress)
            frames.append(event.multi_frame(cursor))
        return b"".join(frames)

    return encode
