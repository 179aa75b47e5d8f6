"""Per-call identity, carried in ContextVars instead of extra arguments.

The call's correlation id is the kernel's (reelcast.jobs.metadata), since the bridge keeps one too.
"""

from __future__ import annotations

from contextvars import ContextVar

from reelcast.jobs.metadata import ANONYMOUS

caller_var: ContextVar[str] = ContextVar("reelcast_caller", default=ANONYMOUS)
# An admin's key sees and acts on every user's jobs.
admin_var: ContextVar[bool] = ContextVar("reelcast_admin", default=False)


def current_caller() -> str:
    return caller_var.get()


def current_is_admin() -> bool:
    return admin_var.get()


def may_see(owner: str) -> bool:
    """Whether the current caller may see a job owned by ``owner``: its owner, or an admin."""
    return current_is_admin() or owner == current_caller()
