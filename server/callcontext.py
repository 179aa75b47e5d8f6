"""Per-call identity and correlation id, carried in ContextVars instead of extra arguments."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

CORRELATION_ID_HEADER = "x-correlation-id"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ANONYMOUS = "anonymous"

correlation_id_var: ContextVar[str] = ContextVar("reelcast_correlation_id", default="")
caller_var: ContextVar[str] = ContextVar("reelcast_caller", default=ANONYMOUS)
# An admin's key sees and acts on every user's jobs.
admin_var: ContextVar[bool] = ContextVar("reelcast_admin", default=False)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    """``candidate`` if it is well formed (``^[A-Za-z0-9._-]{1,64}$``), else a fresh id. Ids are echoed to
    clients and written to logs, so anything else (secrets, markup, newlines) is never taken over."""
    if candidate and _WELL_FORMED.match(candidate):
        return candidate
    return new_correlation_id()


def current_correlation_id() -> str:
    return correlation_id_var.get() or new_correlation_id()


def current_caller() -> str:
    return caller_var.get()


def current_is_admin() -> bool:
    return admin_var.get()


def may_see(owner: str) -> bool:
    """Whether the current caller may see a job owned by ``owner``: its owner, or an admin."""
    return current_is_admin() or owner == current_caller()
