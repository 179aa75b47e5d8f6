"""How a long-running command (``serve``, ``server``, ``worker``, ``bridge``) tells whoever started it that it
is ready, and where it listens, on stdout (which carries no log lines).

``--announce human`` (the default) prints the lines people read (``reelcast gRPC on HOST:PORT …``).
``--announce json`` prints one JSON object per event instead, and nothing else, for supervisors, scripts,
tests and the bench: ``ready`` once every listener is up, ``stopped`` after a clean stop. The schema is
docs/operations.md#announcements; ``ANNOUNCE_VERSION`` is its version, carried by every object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

ANNOUNCE_FORMATS = ("human", "json")
# Raised when a field changes meaning or goes away; a new field does not raise it.
ANNOUNCE_VERSION = 1


def dialable_host(host: str) -> str:
    """A listen host as a client on the same machine dials it: the wildcard addresses become loopback (as
    ``ReelcastServer.target`` does for gRPC)."""
    return "127.0.0.1" if host.strip("[]") in ("", "0.0.0.0", "::") else host


class Announcer:
    """One process's announcements in one of ``ANNOUNCE_FORMATS``: ``say`` prints a line for people (human
    only), ``ready`` and ``stopped`` an event for programs (json only). A call site gives both, so that the
    human lines keep their wording and order whatever the JSON holds."""

    def __init__(self, kind: str, form: str, write: Callable[[str], None]) -> None:
        if form not in ANNOUNCE_FORMATS:
            raise ValueError(f"announce format must be one of {', '.join(ANNOUNCE_FORMATS)}, not {form!r}")
        self.kind = kind
        self.form = form
        self._write = write
        self.is_ready = False

    def say(self, line: str) -> None:
        if self.form == "human":
            self._write(line)

    def ready(self, **fields: Any) -> None:
        """The ``ready`` event: every address the process serves is bound. ``fields`` are the event's own
        (``grpc``, ``http``, ``metrics``...); ``None`` is written as null, so that a listener the process
        does not have is visible as such."""
        self.is_ready = True
        self._event("ready", fields)

    def stopped(self, exit_code: int) -> None:
        """The ``stopped`` event, after a stop that the process saw through (not a kill, a second signal or
        the shutdown watchdog, which end the process at once); only once it was ready."""
        if self.is_ready:
            self._event("stopped", {"exitCode": exit_code})

    def _event(self, event: str, fields: dict[str, Any]) -> None:
        if self.form == "json":
            head = {"announce": ANNOUNCE_VERSION, "event": event, "kind": self.kind, "pid": os.getpid()}
            self._write(json.dumps({**head, **fields}, separators=(",", ":")))
