"""The JetStream layout of the NATS backend: every stream, bucket and consumer, by name, set up idempotently.

- ``REELCAST_EVENTS``: stream on ``reelcast.events.*``, each job's event log on its own subject, and on
  ``reelcast.deleted.*``, one record per deleted job (WatchJobs' feed is this stream, in stream order).
- ``REELCAST_WORK``: work-queue stream, one message per job to run, on ``reelcast.work.<user>.<priority>``
  (``work_subject``) with one durable pull consumer per subject (``work_consumer``, made on demand, gone
  after a day idle); ``reelcast.work`` and its consumer ``workers`` hold what servers of the layout before
  fair scheduling queued, which workers drain first (nats/work.py).
- ``reelcast_jobs`` (KV): ``job.<id>``, the job snapshot.
- ``reelcast_requests`` (KV): idempotency keys (owner + request id -> job id).
- ``reelcast_state`` (KV): ``feed.floor`` (the highest feed position retention forgot),
  ``checkpoints.<id>``, ``files.<id>`` (a work dir's manifest), ``cancel.<id>``,
  ``fairness`` (the users' shares of the starts, storage/fairness.py, updated with compare-and-swap).
- ``reelcast_media`` (KV): ``media.<id>`` (an uploaded file's record) and ``owner.<hex>`` (a user's index).
- ``reelcast_webhooks`` (KV): ``endpoint.<user token>.<id>``, a webhook endpoint's record (its secrets too);
  each endpoint's delivery position is its durable consumer ``webhook-<id>`` on ``REELCAST_EVENTS``
  (server/webhooks/nats_registry.py).
- ``reelcast_files`` (object store): ``<id>/<path>``, work dirs at checkpoints and the final outputs, and
  ``media/<id>``, the uploaded files (nats/media_store.py).

Every process calls :func:`ensure_layout` at start: the first creates, the others find everything in place,
and a changed replica count is applied to the existing streams.

Reads go to each stream's leader (no direct get), so that a process reads its own writes, and what another
process acknowledged, even in a cluster where followers may lag by a few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.api import RawStreamMsg
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from reelcast.server.storage.backend import NatsUnreachableError

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_STREAM = "REELCAST_EVENTS"
EVENTS_PREFIX = "reelcast.events."
# A deleted job's record in the events stream (its EVENT_KIND_JOB_DELETED event), for WatchJobs resumes.
DELETED_PREFIX = "reelcast.deleted."
# Core NATS only (no stream): "1" when an API server starts deleting the job, "0" when it is done or gave up.
DELETING_PREFIX = "reelcast.deleting."
WORK_STREAM = "REELCAST_WORK"
WORK_SUBJECT = "reelcast.work"
WORK_CONSUMER = "workers"
WORK_USERS_PREFIX = "reelcast.work."
FAIRNESS_KEY = "fairness"
# A user's consumer that nobody pulls from for this long is removed by the server (made again on demand).
WORK_CONSUMER_IDLE_SECONDS = 24 * 3600.0
CANCEL_PREFIX = "reelcast.cancel."
JOBS_BUCKET = "reelcast_jobs"
REQUESTS_BUCKET = "reelcast_requests"
KEYS_BUCKET = "reelcast_keys"
STATE_BUCKET = "reelcast_state"
FILES_BUCKET = "reelcast_files"
MEDIA_BUCKET = "reelcast_media"
WEBHOOKS_BUCKET = "reelcast_webhooks"
# Header carrying an event's per-job sequence, so that readers need not decode the payload to find it.
SEQUENCE_HEADER = "Reelcast-Sequence"


def event_subject(job_id: str) -> str:
    return f"{EVENTS_PREFIX}{job_id}"


def deletion_subject(job_id: str) -> str:
    return f"{DELETED_PREFIX}{job_id}"


def user_token(owner: str) -> str:
    """A subject- and consumer-name-safe token of a user id (hex of its UTF-8; ``_`` for no user)."""
    return owner.encode().hex() or "_"


def owner_of_token(token: str) -> str:
    return "" if token == "_" else bytes.fromhex(token).decode()


def work_subject(owner: str, priority_name: str) -> str:
    return f"{WORK_USERS_PREFIX}{user_token(owner)}.{priority_name}"


def work_consumer(subject: str) -> str:
    """The durable consumer of one user's subject: ``work-<user token>-<priority>``."""
    return "work-" + subject.removeprefix(WORK_USERS_PREFIX).replace(".", "-")


def work_consumer_config(durable: str, subject: str, ack_wait_seconds: float) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        # A claim lapses only when its worker stops heartbeating for this long; the runner counts attempts
        # itself (the job's ``attempt``), so the server never gives up on a message.
        ack_wait=ack_wait_seconds,
        max_deliver=-1,
        filter_subject=subject,
        max_ack_pending=-1,
        inactive_threshold=None if subject == WORK_SUBJECT else WORK_CONSUMER_IDLE_SECONDS,
    )


@dataclass
class Layout:
    js: JetStreamContext
    jobs: KeyValue
    requests: KeyValue
    state: KeyValue
    keys: KeyValue
    files: ObjectStore
    ack_wait_seconds: float
    media: KeyValue
    webhooks: KeyValue


async def _ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        # It exists with another configuration (replicas changed, or an older version): update it.
        await js.update_stream(config)


async def _ensure_bucket(js: JetStreamContext, bucket: str, replicas: int) -> KeyValue:
    try:
        return await js.create_key_value(
            api.KeyValueConfig(bucket=bucket, replicas=replicas, direct=False, history=1)
        )
    except BadRequestError:
        info = await js.stream_info(f"KV_{bucket}")
        if info.config.num_replicas != replicas:
            info.config.num_replicas = replicas
            await js.update_stream(info.config)
        return await js.key_value(bucket)


async def _ensure_object_store(js: JetStreamContext, replicas: int) -> ObjectStore:
    try:
        return await js.object_store(FILES_BUCKET)
    except NotFoundError:
        return await js.create_object_store(
            FILES_BUCKET, api.ObjectStoreConfig(bucket=FILES_BUCKET, replicas=replicas)
        )


async def ensure_layout(js: JetStreamContext, replicas: int, ack_wait_seconds: float) -> Layout:
    """Creates or updates every stream, bucket and the work consumer; safe to run from many processes."""
    await _ensure_stream(
        js,
        api.StreamConfig(
            name=EVENTS_STREAM,
            subjects=[f"{EVENTS_PREFIX}*", f"{DELETED_PREFIX}*"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=replicas,
            # Publishes carry Nats-Msg-Id: a writer's retry after a lost ack is stored once.
            duplicate_window=120.0,
            allow_direct=False,
        ),
    )
    await _ensure_stream(
        js,
        api.StreamConfig(
            name=WORK_STREAM,
            # The single subject of the layout before fair scheduling stays, so old messages still run.
            subjects=[WORK_SUBJECT, f"{WORK_USERS_PREFIX}>"],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=120.0,
        ),
    )
    consumer = work_consumer_config(WORK_CONSUMER, WORK_SUBJECT, ack_wait_seconds)
    try:
        await js.add_consumer(WORK_STREAM, consumer)
    except BadRequestError:
        info = await js.consumer_info(WORK_STREAM, WORK_CONSUMER)
        if info.config.ack_wait != ack_wait_seconds:
            # The first process set another ack wait; claims lapse on that one.
            ack_wait_seconds = float(info.config.ack_wait or ack_wait_seconds)
    return Layout(
        js=js,
        jobs=await _ensure_bucket(js, JOBS_BUCKET, replicas),
        requests=await _ensure_bucket(js, REQUESTS_BUCKET, replicas),
        state=await _ensure_bucket(js, STATE_BUCKET, replicas),
        keys=await _ensure_bucket(js, KEYS_BUCKET, replicas),
        files=await _ensure_object_store(js, replicas),
        ack_wait_seconds=ack_wait_seconds,
        media=await _ensure_bucket(js, MEDIA_BUCKET, replicas),
        webhooks=await _ensure_bucket(js, WEBHOOKS_BUCKET, replicas),
    )


# What a cluster shows while a node is lost and a new leader is elected: worth retrying, never a verdict.
TRANSIENT_ERRORS = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    ServiceUnavailableError,
    # A publish answered 503 "no response from stream": the stream's leader is being re-elected.
    NoStreamResponseError,
)
RETRY_SECONDS = 30.0
# How long closing the connection may take (it flushes what is pending to the server, if one answers).
CLOSE_SECONDS = 5.0


async def retrying(call: Callable[[], Awaitable[T]], seconds: float = RETRY_SECONDS) -> T:
    """Runs ``call`` again on transient errors for up to ``seconds``. Only for idempotent calls: reads,
    compare-and-set writes, and publishes carrying a ``Nats-Msg-Id``."""
    deadline = time.monotonic() + seconds
    delay = 0.1
    while True:
        try:
            return await call()
        except TRANSIENT_ERRORS as error:
            if time.monotonic() + delay > deadline:
                raise
            log.info("NATS busy (%s); retrying in %.1f s", type(error).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def stream_messages(js: JetStreamContext, stream: str, subject: str) -> AsyncIterator[RawStreamMsg]:
    """Every message now in ``stream`` on ``subject`` (wildcards allowed), oldest first, one direct read at a
    time. Unlike a KV listing (an ordered push consumer, which can drop its first messages when the process is
    too slow to set it up), it cannot miss one; meant for small streams and rare reads."""
    info = await retrying(lambda: js.stream_info(stream))
    seq, last = info.state.first_seq, info.state.last_seq
    while seq and seq <= last:
        try:
            message = await retrying(
                lambda seq=seq: js.get_msg(stream, seq=seq, subject=subject, next=True)  # type: ignore[misc]
            )
        except NotFoundError:
            return
        yield message
        seq = (message.seq or last) + 1


async def read_json_entry(bucket: KeyValue, key: str) -> tuple[Any, int]:
    """A JSON document kept under ``key`` and its revision; ``(None, 0)`` when there is none."""
    try:
        entry = await retrying(lambda: bucket.get(key))
    except KeyNotFoundError:
        return None, 0
    return json.loads(entry.value or b"null"), entry.revision or 0


async def update_json_entry(bucket: KeyValue, key: str, change: Callable[[Any], Any | None]) -> bool:
    """Reads the JSON document under ``key``, passes it to ``change`` (None when there is none) and writes
    what it returns with compare-and-set, again while another process wrote in between: writers of one key
    never drop each other's changes. ``change`` returns None to write nothing. False after 10 lost races."""
    for _ in range(10):
        current, revision = await read_json_entry(bucket, key)
        changed = change(current)
        if changed is None:
            return True
        payload = json.dumps(changed, sort_keys=True).encode()
        try:
            await retrying(lambda p=payload, r=revision: bucket.update(key, p, last=r))  # type: ignore[misc]
            return True
        except KeyWrongLastSequenceError:
            continue
    return False


class _ConnectionErrors:
    """nats-py's error callback: one line per distinct error, at most one every 10 s (its default logs a
    traceback at every reconnect attempt, four a second while a server is down)."""

    def __init__(self) -> None:
        self._last = ("", float("-inf"))

    async def report(self, error: Exception) -> None:
        text = f"{type(error).__name__}: {error}"
        now = time.monotonic()
        if text != self._last[0] or now - self._last[1] >= 10.0:
            self._last = (text, now)
            log.warning("NATS connection: %s", text)


class NatsConnection:
    """One client connection per process, shared by the store, queue, cancel bus, files and notifier.
    Built unconnected (constructors stay synchronous); ``open`` connects and sets up the layout."""

    def __init__(self, servers: Sequence[str], replicas: int, ack_wait_seconds: float) -> None:
        self.servers = list(servers)
        self.replicas = replicas
        self.ack_wait_seconds = ack_wait_seconds
        self._client: Client | None = None
        self._layout: Layout | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the NATS connection is not open")
        return self._client

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            raise RuntimeError("the NATS connection is not open")
        return self._layout

    async def open(self, timeout: float = 60.0) -> None:
        """Connects (retrying until ``timeout``, then ``ConnectionError``) and sets up the layout."""
        try:
            self._client = await asyncio.wait_for(
                nats.connect(
                    servers=self.servers,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=2,
                    allow_reconnect=True,
                    name="reelcast",
                    error_cb=_ConnectionErrors().report,
                ),
                timeout,
            )
        except TimeoutError:
            where = ", ".join(self.servers)
            raise NatsUnreachableError(f"cannot reach NATS at {where} within {timeout:g} s") from None
        js = self._client.jetstream(timeout=10.0)
        # A cluster that has just started elects its JetStream leader first: wait for it.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._layout = await ensure_layout(js, self.replicas, self.ack_wait_seconds)
                return
            except (*TRANSIENT_ERRORS, nats.js.errors.APIError) as error:
                if time.monotonic() > deadline:
                    raise
                log.info("JetStream not ready (%s); retrying", error)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        """Closes the client in bounded time, never raising: with the server gone, nats-py's close fails on
        its dead transport (``ConnectionResetError``) or waits, and the process is stopping anyway."""
        if self._client is None or self._client.is_closed:
            return
        try:
            await asyncio.wait_for(self._client.close(), CLOSE_SECONDS)
        except (TimeoutError, OSError, nats.errors.Error) as error:
            log.warning("NATS connection closed uncleanly (%s: %s)", type(error).__name__, error)
