"""The media store interface every backend implements (embedded/media_store.py: files under the data dir
with records in SQLite; nats/media_store.py: the ``reelcast_files`` object store with records in a KV bucket,
so that every server and worker of a NATS deployment reads the same files).

A record is the ``Media`` message itself, as jobs are stored as ``Job`` messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reelcast.jobs.v1 import job_service_pb2


@dataclass(frozen=True)
class Quota:
    """What one user may keep: bytes in all and files."""

    max_bytes: int
    max_count: int


class QuotaExceededError(RuntimeError):
    """Storing the file would put its owner over the quota; nothing was stored."""


def create_time_us(media: job_service_pb2.Media) -> int:
    return media.create_time.seconds * 1_000_000 + media.create_time.nanos // 1000


class MediaStore(Protocol):
    """All methods are coroutines and safe to call concurrently, from any process of the deployment."""

    async def add(self, media: job_service_pb2.Media, path: Path, quota: Quota) -> None:
        """Stores ``path``'s bytes and the record, unless the owner's media with this one would pass
        ``quota`` (QuotaExceededError, and nothing is left). The check and the write are one step: two
        uploads racing for the last of a quota cannot both pass. ``path`` stays the caller's."""

    async def get(self, media_id: str) -> job_service_pb2.Media | None: ...

    async def list_media(
        self, owner: str | None, limit: int, after: tuple[int, str] | None
    ) -> list[job_service_pb2.Media]:
        """Records newest first (``owner`` None: everyone's), after the (create_time_us, id) cursor."""

    async def delete(self, media_id: str) -> bool:
        """Removes the record and its file; False if there was none."""

    async def created_before(self, cutoff_us: int, limit: int) -> list[job_service_pb2.Media]:
        """Records stored before ``cutoff_us``, oldest first (retention)."""

    async def local_file(self, media: job_service_pb2.Media, cache_dir: Path) -> Path | None:
        """A local path holding the stored bytes of ``media``: the stored file itself where it is local, else
        a copy fetched into ``cache_dir``. None if the file is gone."""
