"""The embedded backend's media: files in ``<data dir>/media/<id>`` and their records in SQLite
(``media.db``, beside the job store's file), one connection serialised by a lock."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.config import PRIVATE_DIR_MODE
from reelcast.server.media.store import Quota, QuotaExceededError, create_time_us

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    create_time_us INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS media_owner ON media(owner, create_time_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS media_age ON media(create_time_us);
"""


class LocalMediaStore:
    def __init__(self, database_path: Path, files_dir: Path) -> None:
        self.files_dir = files_dir
        self._database_path = database_path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._database_path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            connection = sqlite3.connect(self._database_path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return call(self._db())

        return await asyncio.to_thread(locked)

    def file_path(self, media_id: str) -> Path:
        return self.files_dir / media_id

    async def add(self, media: job_service_pb2.Media, path: Path, quota: Quota) -> None:
        target = self.file_path(media.id)

        def place() -> None:
            self.files_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(path, partial)
            os.replace(partial, target)

        def insert(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                used_bytes, used_count = db.execute(
                    "SELECT COALESCE(SUM(size_bytes), 0), COUNT(*) FROM media WHERE owner = ?", (media.owner,)
                ).fetchone()
                if used_count + 1 > quota.max_count or used_bytes + media.size_bytes > quota.max_bytes:
                    raise QuotaExceededError(f"{used_count} files, {used_bytes} bytes")
                db.execute(
                    "INSERT INTO media (id, owner, create_time_us, size_bytes, record) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        media.id,
                        media.owner,
                        create_time_us(media),
                        media.size_bytes,
                        media.SerializeToString(),
                    ),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        # The file first: a reader finds a record only once its file is in place.
        await asyncio.to_thread(place)
        try:
            await self._run(insert)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    @staticmethod
    def _records(rows: list[tuple[bytes]]) -> list[job_service_pb2.Media]:
        return [job_service_pb2.Media.FromString(row[0]) for row in rows]

    async def get(self, media_id: str) -> job_service_pb2.Media | None:
        rows = await self._run(
            lambda db: db.execute("SELECT record FROM media WHERE id = ?", (media_id,)).fetchall()
        )
        return self._records(rows)[0] if rows else None

    async def list_media(
        self, owner: str | None, limit: int, after: tuple[int, str] | None
    ) -> list[job_service_pb2.Media]:
        clauses: list[str] = []
        values: list[object] = []
        if owner is not None:
            clauses.append("owner = ?")
            values.append(owner)
        if after is not None:
            clauses.append("(create_time_us, id) < (?, ?)")
            values.extend(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT record FROM media {where} ORDER BY create_time_us DESC, id DESC LIMIT ?"
        rows = await self._run(lambda db: db.execute(query, (*values, limit)).fetchall())
        return self._records(rows)

    async def delete(self, media_id: str) -> bool:
        deleted = await self._run(
            lambda db: db.execute("DELETE FROM media WHERE id = ?", (media_id,)).rowcount
        )
        await asyncio.to_thread(self.file_path(media_id).unlink, True)
        return bool(deleted)

    async def created_before(self, cutoff_us: int, limit: int) -> list[job_service_pb2.Media]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT record FROM media WHERE create_time_us < ? ORDER BY create_time_us LIMIT ?",
                (cutoff_us, limit),
            ).fetchall()
        )
        return self._records(rows)

    async def local_file(self, media: job_service_pb2.Media, cache_dir: Path) -> Path | None:
        path = self.file_path(media.id)
        return path if await asyncio.to_thread(path.is_file) else None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
