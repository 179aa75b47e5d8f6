"""``JobProgress`` → Server-Sent Events: the seed's wire format, one event per ``JobProgress``.

The projection (reelcast.jobs.event_payloads, shared with the webhooks) is pure: an event depends on its
``JobProgress`` alone, never on what a connection saw before. That is what makes ``id:`` = ``sequence`` a
complete resume cursor (Aura diffed polled states per connection, so it could not resume). Names and fields
are the seed's contract, written exactly; extra fields (``jobProgressPct``, ``message``, ``time``...) are
additions that clients may ignore.

Multi-job streams (``/api/events?jobs=``) carry a :class:`MultiCursor` as the id: the per-job sequences of
every job delivered so far, so one id resumes every job exactly. The stream of all the caller's jobs
(``/api/events`` without ``jobs``, bridge/alljobs.py) carries the server's WatchJobs cursor instead.

The bridge frames SSE itself (``id:``, ``event:``, one ``data:`` line, ``: ping`` comments, ``retry:``), with
CRLF line ends as sse-starlette writes them. sse-starlette is a dev dependency only, the tests' oracle
(tests/bridge/test_frames.py compares every frame byte for byte): the bridge needs a few fixed byte strings
from it, not its response class (bridge/eventstream.py says why), so it is not a runtime dependency.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

import orjson

# Re-exported: the names the SSE streams were always built from.
from reelcast.jobs.event_payloads import EVENT_NAMES as EVENT_NAMES
from reelcast.jobs.event_payloads import event_data as event_data
from reelcast.jobs.terminal import TERMINAL_KINDS, is_terminal
from reelcast.jobs.v1 import job_pb2


class ProjectedEvent:
    """One ``JobProgress`` with its SSE projection, made once and shared by every subscriber of its job.

    Intentional divergence from yielding a ``ServerSentEvent`` per subscriber (sse-starlette's way): with
    1,000 browsers on a job, projecting, JSON-encoding and framing each event per connection was most of the
    bridge's work, so the frame is built once (orjson, lazily, on first use) and the streams write bytes.
    The bytes are exactly what sse-starlette's ``ServerSentEvent(data, event, id).encode()`` gives.
    """

    __slots__ = (
        "_frame",
        "_multi_data",
        "job_id",
        "kind",
        "progress",
        "sequence",
        "stage",
        "stamp",
        "terminal",
    )

    def __init__(self, progress: job_pb2.JobProgress) -> None:
        self.progress = progress
        self.job_id = progress.job_id
        self.sequence = progress.sequence
        self.kind = progress.kind
        self.stage = progress.stage
        self.terminal = progress.kind in TERMINAL_KINDS
        # When the server made the event (seconds since the epoch), for the delivery-latency histogram.
        self.stamp = progress.time.seconds + progress.time.nanos * 1e-9 if progress.HasField("time") else 0.0
        self._frame: bytes | None = None
        self._multi_data: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The single-job stream's frame: ``id:`` (the sequence), ``event:``, ``data:``."""
        if self._frame is None:
            self._frame = b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (
                self.sequence,
                EVENT_NAMES[self.kind].encode(),
                orjson.dumps(event_data(self.progress)),
            )
        return self._frame

    def multi_frame(self, cursor: MultiCursor) -> bytes:
        """The multi-job stream's frame; only its ``id:`` (the connection's cursor) is per connection."""
        return self.frame_with_id(cursor.encode())

    def frame_with_id(self, event_id: str) -> bytes:
        """The frame of a stream of several jobs (``data`` with ``jobId``) under ``event_id``."""
        if self._multi_data is None:
            self._multi_data = b"\r\nevent: %s\r\ndata: %s\r\n\r\n" % (
                EVENT_NAMES[self.kind].encode(),
                orjson.dumps({"jobId": self.job_id, **event_data(self.progress)}),
            )
        return b"id: " + event_id.encode() + self._multi_data


def ping_frame(retry_ms: int | None = None) -> bytes:
    """The ``: ping`` heartbeat comment, with the ``retry:`` reconnect hint (ms) on the first one."""
    if retry_ms is None:
        return b": ping\r\n\r\n"
    return b": ping\r\nretry: %d\r\n\r\n" % retry_ms


class InvalidEventIdError(ValueError):
    pass


_SEQUENCE = re.compile(r"^(0|[1-9][0-9]{0,17})$")
_CURSOR_ENTRY = re.compile(r"^([A-Za-z0-9_-]{8})([0-9a-z]{1,13})(\*?)$")


def parse_sequence(text: str) -> int:
    """A single-job ``Last-Event-ID``: the decimal sequence of an event."""
    if not _SEQUENCE.match(text.strip()):
        raise InvalidEventIdError(text)
    return int(text.strip())


def job_key(job_id: str) -> str:
    """8 URL-safe characters naming a job inside a cursor (48 bits of SHA-256: collisions among the jobs of
    one connection are negligible, and ids stay short however long job ids are)."""
    return base64.urlsafe_b64encode(hashlib.sha256(job_id.encode()).digest()[:6]).decode()


@dataclass
class MultiCursor:
    """Per-job positions of a multi-job stream: ``{key}{sequence base 36}[*]`` entries joined by ``.``.

    ``*`` marks a job whose terminal event was delivered, so a reconnect does not even open its upstream.
    Jobs absent from the cursor start from their first event.
    """

    sequences: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def encode(self) -> str:
        return (
            ".".join(
                f"{key}{_base36(seq)}{'*' if key in self.finished else ''}"
                for key, seq in sorted(self.sequences.items())
            )
            or "0"
        )

    @classmethod
    def decode(cls, text: str) -> MultiCursor:
        cursor = cls()
        text = text.strip()
        if text in ("", "0"):
            return cursor
        for entry in text.split("."):
            match = _CURSOR_ENTRY.match(entry)
            if match is None:
                raise InvalidEventIdError(text)
            key, seq, done = match.groups()
            cursor.sequences[key] = int(seq, 36)
            if done:
                cursor.finished.add(key)
        return cursor

    def restricted_to(self, job_ids: list[str]) -> MultiCursor:
        """The positions of ``job_ids`` only."""
        keys = {job_key(job_id) for job_id in job_ids}
        return MultiCursor(
            {key: seq for key, seq in self.sequences.items() if key in keys}, self.finished & keys
        )

    def position(self, job_id: str) -> tuple[int, bool]:
        """(sequence delivered, terminal delivered) of ``job_id``."""
        key = job_key(job_id)
        return self.sequences.get(key, 0), key in self.finished

    def reopen(self, job_id: str) -> None:
        """The job's log went on past the end this cursor delivered (it was retried)."""
        self.finished.discard(job_key(job_id))

    def advance(self, progress: job_pb2.JobProgress) -> None:
        key = job_key(progress.job_id)
        self.sequences[key] = progress.sequence
        if is_terminal(progress):
            self.finished.add(key)


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out
