"""The NATS backend's media: the bytes in the ``reelcast_files`` object store as ``media/<id>`` (where job
files live, so that a worker on any machine reads them), the records in the ``reelcast_media`` KV bucket as
``media.<id>``, and each owner's index (``owner.<hex of the user name>``: id -> [size, create_time_us]),
written with compare-and-set, which makes the quota check and the write one step across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from nats.js.errors import KeyNotFoundError, NotFoundError

from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.media.store import Quota, QuotaExceededError, create_time_us
from reelcast.server.storage.nats.layout import (
    MEDIA_BUCKET,
    NatsConnection,
    read_json_entry,
    retrying,
    stream_messages,
    update_json_entry,
)


def _object_name(media_id: str) -> str:
    return f"media/{media_id}"


def _owner_key(owner: str) -> str:
    return f"owner.{owner.encode().hex() or '-'}"


class NatsMediaStore:
    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection

    async def add(self, media: job_service_pb2.Media, path: Path, quota: Quota) -> None:
        layout = self._connection.layout
        name = _object_name(media.id)
        with path.open("rb") as handle:
            await retrying(lambda: layout.files.put(name, handle))
        await retrying(lambda: layout.media.put(f"media.{media.id}", media.SerializeToString()))
        refused: list[str] = []

        def include(index: Any) -> Any:
            index = dict(index or {})
            used = sum(size for size, _ in index.values())
            if len(index) + 1 > quota.max_count or used + media.size_bytes > quota.max_bytes:
                refused.append(f"{len(index)} files, {used} bytes")
                return None
            index[media.id] = [media.size_bytes, create_time_us(media)]
            return index

        written = await update_json_entry(layout.media, _owner_key(media.owner), include)
        if refused or not written:
            await self._remove(media.id)
            raise QuotaExceededError(refused[0] if refused else "the quota index is too busy")

    async def _remove(self, media_id: str) -> None:
        layout = self._connection.layout
        with contextlib.suppress(NotFoundError):
            await retrying(lambda: layout.files.delete(_object_name(media_id)))
        await retrying(lambda: layout.media.purge(f"media.{media_id}"))

    async def get(self, media_id: str) -> job_service_pb2.Media | None:
        try:
            entry = await retrying(lambda: self._connection.layout.media.get(f"media.{media_id}"))
        except KeyNotFoundError:
            return None
        return job_service_pb2.Media.FromString(entry.value) if entry.value else None

    async def _all(self) -> list[job_service_pb2.Media]:
        """Every record, read from the bucket's stream (rare: an admin's listing and retention)."""
        records = []
        js = self._connection.layout.js
        async for message in stream_messages(js, f"KV_{MEDIA_BUCKET}", f"$KV.{MEDIA_BUCKET}.media.*"):
            if (message.headers or {}).get("KV-Operation") or not message.data:
                continue  # a delete or purge marker
            records.append(job_service_pb2.Media.FromString(message.data))
        return records

    async def list_media(
        self, owner: str | None, limit: int, after: tuple[int, str] | None
    ) -> list[job_service_pb2.Media]:
        if owner is None:
            records = await self._all()
        else:
            index, _ = await read_json_entry(self._connection.layout.media, _owner_key(owner))
            found = await asyncio.gather(*(self.get(media_id) for media_id in (index or {})))
            records = [record for record in found if record is not None]
        records.sort(key=lambda record: (create_time_us(record), record.id), reverse=True)
        if after is not None:
            records = [record for record in records if (create_time_us(record), record.id) < after]
        return records[:limit]

    async def delete(self, media_id: str) -> bool:
        media = await self.get(media_id)
        if media is None:
            return False

        def exclude(index: Any) -> Any:
            if not index or media_id not in index:
                return None
            return {key: value for key, value in index.items() if key != media_id}

        await update_json_entry(self._connection.layout.media, _owner_key(media.owner), exclude)
        await self._remove(media_id)
        return True

    async def created_before(self, cutoff_us: int, limit: int) -> list[job_service_pb2.Media]:
        old = [record for record in await self._all() if create_time_us(record) < cutoff_us]
        old.sort(key=create_time_us)
        return old[:limit]

    async def local_file(self, media: job_service_pb2.Media, cache_dir: Path) -> Path | None:
        """Fetches the object into ``cache_dir/<id>`` once (a stored file never changes: a new upload gets a
        new id), written under a temporary name and renamed, so that a half-written copy is never used."""
        target = cache_dir / media.id
        if await asyncio.to_thread(_cached, target, media.size_bytes):
            return target
        await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
        partial = cache_dir / f".{media.id}.partial"
        try:
            with partial.open("wb") as handle:
                await retrying(
                    lambda: self._connection.layout.files.get(_object_name(media.id), writeinto=handle)
                )
        except NotFoundError:
            partial.unlink(missing_ok=True)
            return None
        partial.replace(target)
        await asyncio.to_thread(_prune_cache, cache_dir)
        return target


# A worker's copy of an upload goes once no stage used it for this long (far past the stall timeout, so never
# while a stage may still read it).
CACHE_TTL_SECONDS = 24 * 3600.0


def _cached(path: Path, size: int) -> bool:
    """Whether ``path`` holds the whole file; a use keeps it in the cache for another CACHE_TTL_SECONDS."""
    try:
        if path.stat().st_size != size:
            return False
        os.utime(path)
    except OSError:
        return False
    return True


def _prune_cache(cache_dir: Path) -> None:
    cutoff = time.time() - CACHE_TTL_SECONDS
    for entry in cache_dir.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
