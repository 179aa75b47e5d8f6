"""The media RPCs of ``JobService`` (UploadMedia, GetMedia, ListMedia, DeleteMedia), a mixin of the servicer
so that service.py stays about jobs. Ownership is the jobs' rule: another user's media is NOT_FOUND, the very
answer a missing id gets, and an admin sees and deletes everyone's."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from grpc import aio

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_service_pb2
from reelcast.jobs.violations import FieldViolation
from reelcast.server.config import PRIVATE_DIR_MODE, Settings
from reelcast.server.media.intake import MediaLimits, prepare_upload
from reelcast.server.media.store import MediaStore, QuotaExceededError, create_time_us
from reelcast.server.rpc.abort import abort
from reelcast.server.rpc.quotas import ResourceQuotas, usage_of
from reelcast.server.security.callcontext import current_caller, current_is_admin, may_see
from reelcast.server.storage.job_store import JobStore, PageCursor
from reelcast.server.storage.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidPageTokenError,
    decode_page_token,
    encode_page_token,
    filter_fingerprint,
)

Context = aio.ServicerContext[Any, Any]
MAX_FILE_NAME_CHARS = 255
# Intakes (decode, re-encode, transcode) running at once per server: each may keep a core busy for seconds.
CONCURRENT_INTAKES = 2


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.media_max_bytes,
        max_pixels=settings.media_max_pixels,
        max_side=settings.media_max_side,
        max_clip_seconds=settings.media_max_clip_seconds,
        max_audio_seconds=settings.media_max_audio_seconds,
    )


def _remove_incoming(source: Path) -> None:
    source.unlink(missing_ok=True)
    for leftover in source.parent.glob(f"{source.name}.*"):
        leftover.unlink(missing_ok=True)


class _Refusal(Exception):  # noqa: N818  (a refusal, not an error of ours)
    """An upload refused with a catalogue error: its files are removed before the answer."""

    def __init__(self, error: ReelcastError, violations: Sequence[FieldViolation] = ()) -> None:
        super().__init__(str(error))
        self.error = error
        self.violations = violations


class MediaRpcs:
    """Needs ``self.media`` (the backend's MediaStore), ``self.store`` (the JobStore, whose videos count
    in the stored-bytes quota), ``self.quotas`` and ``self.media_settings``."""

    media: MediaStore
    store: JobStore
    quotas: ResourceQuotas
    media_settings: Settings
    _intakes: asyncio.Semaphore

    async def _receive_upload(
        self, requests: AsyncIterator[job_service_pb2.UploadMediaRequest], target: Path
    ) -> str:
        """Writes the chunks to ``target``, refusing the upload as soon as it passes the size cap; returns
        the file name the metadata gave."""
        limit = self.media_settings.media_max_bytes
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("part") != "metadata":
            raise _Refusal(
                ReelcastError(errors.MEDIA_UPLOAD_INVALID, "The first message must carry the metadata."),
                [FieldViolation("metadata", "must come first")],
            )
        file_name = first.metadata.file_name
        if len(file_name) > MAX_FILE_NAME_CHARS:
            raise _Refusal(
                ReelcastError(errors.MEDIA_UPLOAD_INVALID, "The file name is longer than 255 characters."),
                [FieldViolation("metadata.file_name", "must be at most 255 characters")],
            )
        received = 0
        with target.open("wb") as handle:
            async for request in requests:
                if request.WhichOneof("part") != "chunk":
                    raise _Refusal(ReelcastError(errors.MEDIA_UPLOAD_INVALID, "Metadata came twice."))
                received += len(request.chunk)
                if received > limit:
                    raise _Refusal(ReelcastError(errors.MEDIA_TOO_LARGE, f"The file exceeds {limit} bytes."))
                handle.write(request.chunk)
        if received == 0:
            raise _Refusal(ReelcastError(errors.MEDIA_UPLOAD_INVALID, "The file is empty."))
        return file_name

    async def UploadMedia(
        self, request_iterator: AsyncIterator[job_service_pb2.UploadMediaRequest], context: Context
    ) -> job_service_pb2.UploadMediaResponse:
        settings = self.media_settings
        incoming = settings.media_incoming_dir
        incoming.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        media_id = uuid.uuid4().hex
        source = incoming / media_id
        try:
            try:
                file_name = await self._receive_upload(request_iterator, source)
                async with self._intakes:
                    try:
                        prepared = await asyncio.to_thread(prepare_upload, source, media_limits(settings))
                    except ReelcastError as refused:
                        raise _Refusal(refused) from refused
            except _Refusal as refusal:
                # Nothing is left behind before the answer leaves: a caller that checks at once finds
                # nothing (gRPC may send the status as soon as abort is called).
                _remove_incoming(source)
                await abort(context, refusal.error, refusal.violations)
            media = job_service_pb2.Media(
                id=media_id,
                owner=current_caller(),
                kind=prepared.kind,  # type: ignore[arg-type]
                content_type=prepared.content_type,
                size_bytes=prepared.path.stat().st_size,
                file_name=file_name,
                width=prepared.width,
                height=prepared.height,
                duration_seconds=prepared.duration_seconds,
            )
            media.create_time.FromMicroseconds(int(time.time() * 1_000_000))
            # The media store checks the media quota, narrowed to what the stored-bytes quota leaves
            # beside the owner's videos, in one step with the write (quotas.py).
            usage = await usage_of(self.store, self.media, media.owner)
            try:
                await self.media.add(media, prepared.path, self.quotas.upload_quota(usage))
            except QuotaExceededError:
                _remove_incoming(source)
                usage = await usage_of(self.store, self.media, media.owner)
                await abort(context, self.quotas.upload_refusal(usage, media.size_bytes))
            return job_service_pb2.UploadMediaResponse(media=media)
        finally:
            # At once, not in a thread: the answer (a refusal's too) leaves only when nothing is left here.
            with contextlib.suppress(OSError):
                _remove_incoming(source)

    async def _owned_media(self, media_id: str, context: Context) -> job_service_pb2.Media:
        media = await self.media.get(media_id) if media_id and len(media_id) <= 128 else None
        if media is None or not may_see(media.owner):
            # Not echoed: another user's media gets the same bytes as a missing one.
            await abort(context, ReelcastError(errors.MEDIA_NOT_FOUND, "No media with this id."))
        return media

    async def GetMedia(
        self, request: job_service_pb2.GetMediaRequest, context: Context
    ) -> job_service_pb2.GetMediaResponse:
        return job_service_pb2.GetMediaResponse(media=await self._owned_media(request.media_id, context))

    async def DeleteMedia(
        self, request: job_service_pb2.DeleteMediaRequest, context: Context
    ) -> job_service_pb2.DeleteMediaResponse:
        media = await self._owned_media(request.media_id, context)
        await self.media.delete(media.id)
        return job_service_pb2.DeleteMediaResponse()

    async def ListMedia(
        self, request: job_service_pb2.ListMediaRequest, context: Context
    ) -> job_service_pb2.ListMediaResponse:
        if request.page_size < 0:
            await abort(
                context,
                ReelcastError(errors.INVALID_REQUEST, "page_size must not be negative"),
                [FieldViolation("page_size", "must not be negative")],
            )
        owner = None if current_is_admin() else current_caller()
        fingerprint = filter_fingerprint(f"media:{current_caller()}", [])
        after = None
        if request.page_token:
            try:
                cursor = decode_page_token(request.page_token, fingerprint)
            except InvalidPageTokenError as invalid:
                await abort(
                    context,
                    ReelcastError(errors.INVALID_REQUEST, str(invalid)),
                    [FieldViolation("page_token", str(invalid).removeprefix("page_token "))],
                )
            after = (cursor.create_time_us, cursor.job_id)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        found = await self.media.list_media(owner, size + 1, after)
        response = job_service_pb2.ListMediaResponse(media=found[:size])
        if len(found) > size:
            last = found[size - 1]
            response.next_page_token = encode_page_token(
                PageCursor(create_time_us(last), last.id), fingerprint
            )
        return response
