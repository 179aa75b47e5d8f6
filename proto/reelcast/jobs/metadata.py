"""The metadata of the contract: the header names a call carries, and the correlation-id rule.

The same names travel as gRPC metadata and, where the bridge forwards them, as HTTP headers.

The correlation id traces one call (or one job) through every log line and error. A caller may choose it;
the server keeps it only when it is well formed (``^[A-Za-z0-9._-]{1,64}$``) and otherwise makes a fresh one,
because ids are echoed to clients and written to logs: secrets, markup and newlines are never taken over.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

# ``Bearer <key>``, ``Session <token>`` or ``StreamToken <token>`` (docs/security.md).
AUTHORIZATION_HEADER = "authorization"
# Sent by the caller and echoed in initial metadata (the server's choice when the caller's was refused).
CORRELATION_ID_HEADER = "x-correlation-id"
# GetJob with this metadata set to "request" answers with a stream token for the job in trailing metadata.
STREAM_TOKEN_HEADER = "x-reelcast-stream-token"
# Sent in initial metadata of every authenticated call: the caller's own user name.
USER_HEADER = "x-reelcast-user"
# "open" on a call made with an API key: the initial metadata carries a new session token under this name;
# "close" on a call made with a session ends that session.
SESSION_HEADER = "x-reelcast-session"
# The trailer that holds a failed call's ``google.rpc.Status`` (reelcast.jobs.status reads and writes it).
STATUS_DETAILS_HEADER = "grpc-status-details-bin"
# The user of a call when authentication is off (no USER_HEADER comes back).
ANONYMOUS = "anonymous"

CORRELATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The correlation id of the call being served now, in the room that serves it (server or bridge).
correlation_id_var: ContextVar[str] = ContextVar("reelcast_correlation_id", default="")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def is_well_formed_correlation_id(candidate: str) -> bool:
    """Whether the server keeps ``candidate`` as the call's correlation id."""
    return bool(CORRELATION_ID_PATTERN.match(candidate))


def accept_correlation_id(candidate: str | None) -> str:
    """``candidate`` if it is well formed, else a fresh id."""
    if candidate and is_well_formed_correlation_id(candidate):
        return candidate
    return new_correlation_id()


def current_correlation_id() -> str:
    """The correlation id of the call being served, or a fresh one outside a call."""
    return correlation_id_var.get() or new_correlation_id()
