"""The embedded backend's webhook records: endpoints and each endpoint's cursor on the store's feed, in a
SQLite file of their own (``webhooks.db`` beside ``jobs.db``).

The cursor is the outbox: the feed already holds every event in order, so an endpoint's pending deliveries
are the feed after its cursor, and the cursor moves only after an event was delivered (a 2xx) or given up.
A delivery therefore survives a restart or a SIGKILL: it is read again from the feed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path

from reelcast.server.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from reelcast.server.webhooks.endpoints import EventFilter, WebhookEndpoint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    record TEXT NOT NULL,
    position INTEGER NOT NULL
);
"""


def record_of(endpoint: WebhookEndpoint) -> str:
    event_filter = endpoint.event_filter
    return json.dumps(
        {
            "url": endpoint.url,
            "everything": event_filter.everything,
            "terminal": event_filter.terminal,
            "statuses": sorted(event_filter.statuses),
            "labels": dict(endpoint.labels),
            "secret": endpoint.secret,
            "previousSecret": endpoint.previous_secret,
            "previousSecretExpiresUs": endpoint.previous_secret_expires_us,
            "failing": endpoint.failing,
            "lastError": endpoint.last_error,
        }
    )


def endpoint_of_record(endpoint_id: str, owner: str, record: str) -> WebhookEndpoint:
    fields = json.loads(record)
    return WebhookEndpoint(
        id=endpoint_id,
        owner=owner,
        url=fields["url"],
        event_filter=EventFilter(fields["everything"], fields["terminal"], frozenset(fields["statuses"])),
        labels=fields["labels"],
        secret=fields["secret"],
        previous_secret=fields["previousSecret"],
        previous_secret_expires_us=fields["previousSecretExpiresUs"],
        failing=fields["failing"],
        last_error=fields["lastError"],
    )


class WebhookRegistry:
    """Endpoints and their feed cursors. Small writes, one per settled delivery: each call runs on a worker
    thread under a lock, on the one connection the registry keeps (opening one per call cost more than the
    statement)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        # Owner-only before SQLite opens it, as the job store does: it holds every endpoint's signing secret.
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        # Used from whichever worker thread runs the call, never two at once (the lock).
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, statement: str, parameters: tuple[object, ...]) -> list[tuple[str, str, str, int]]:
        def run() -> list[tuple[str, str, str, int]]:
            with self._lock, self._db:
                rows: list[tuple[str, str, str, int]] = self._db.execute(statement, parameters).fetchall()
            return rows

        return await asyncio.to_thread(run)

    async def add(self, endpoint: WebhookEndpoint, position: int) -> None:
        """Registers ``endpoint``; it receives the events after feed ``position`` (the feed's head when it
        was created: an endpoint does not receive the history, a replay does)."""
        await self._run(
            "INSERT INTO endpoints (id, owner, record, position) VALUES (?, ?, ?, ?)",
            (endpoint.id, endpoint.owner, record_of(endpoint), position),
        )

    async def save(self, endpoint: WebhookEndpoint) -> None:
        await self._run("UPDATE endpoints SET record = ? WHERE id = ?", (record_of(endpoint), endpoint.id))

    async def mark(self, endpoint_id: str, failing: bool, last_error: str) -> None:
        # One statement on the stored record: a rotation saved meanwhile is kept.
        statement = "UPDATE endpoints SET record = json_set(record, '$.failing', json(?), '$.lastError', ?)"
        await self._run(
            f"{statement} WHERE id = ?", ("true" if failing else "false", last_error, endpoint_id)
        )

    async def remove(self, endpoint_id: str) -> None:
        await self._run("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    async def endpoints(self, owner: str | None = None) -> list[WebhookEndpoint]:
        if owner is None:
            rows = await self._run("SELECT id, owner, record, position FROM endpoints ORDER BY id", ())
        else:
            statement = "SELECT id, owner, record, position FROM endpoints WHERE owner = ? ORDER BY id"
            rows = await self._run(statement, (owner,))
        return [endpoint_of_record(endpoint_id, who, record) for endpoint_id, who, record, _ in rows]

    async def endpoint(self, endpoint_id: str) -> tuple[WebhookEndpoint, int] | None:
        """The endpoint and its cursor (the feed position after which its deliveries are pending), read
        together; None once it is gone."""
        rows = await self._run(
            "SELECT id, owner, record, position FROM endpoints WHERE id = ?", (endpoint_id,)
        )
        if not rows:
            return None
        found, owner, record, position = rows[0]
        return endpoint_of_record(found, owner, record), int(position)

    async def position(self, endpoint_id: str) -> int | None:
        """The feed position after which ``endpoint_id``'s deliveries are pending; None once it is gone."""
        rows = await self._run(
            "SELECT id, owner, record, position FROM endpoints WHERE id = ?", (endpoint_id,)
        )
        return int(rows[0][3]) if rows else None

    async def advance(self, endpoint_id: str, position: int) -> None:
        """Moves the cursor forward only (never back), once the event at ``position`` is settled."""
        await self._run(
            "UPDATE endpoints SET position = ? WHERE id = ? AND position < ?",
            (position, endpoint_id, position),
        )
