"""The media endpoints: ``POST /api/media`` (multipart/form-data, field ``file``), ``GET /api/media``,
``GET /api/media/{mediaId}`` and ``DELETE /api/media/{mediaId}``, each a thin call of one JobService RPC.

An upload is never held whole: python-multipart (Starlette's own parser) parses the body as it arrives, and
each piece of the file part goes on to the server's client-streaming ``UploadMedia`` at once, so the bridge
holds a few chunks at most. The file is capped here while it streams (413 ``E041`` as soon as it passes
``REELCAST_MEDIA_MAX_BYTES``) and again by the server, which also judges the content.

Intentional divergence: Starlette's ``request.form()`` is not used, as it spools every file to a temporary
file before the handler sees it; the bridge keeps no disk of its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Literal

import grpc
import msgspec
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import Response

from reelcast.bridge.bodies import page_size_param
from reelcast.bridge.problems import ApiError
from reelcast.bridge.state import bridge_state, grpc_metadata
from reelcast.jobs import errors
from reelcast.jobs.resources import Time, _Answer, timestamp
from reelcast.jobs.v1 import job_service_pb2

MediaWord = Literal["image", "clip", "audio"]
_KIND_WORDS: dict[int, MediaWord] = {
    job_service_pb2.MEDIA_KIND_IMAGE: "image",
    job_service_pb2.MEDIA_KIND_CLIP: "clip",
    job_service_pb2.MEDIA_KIND_AUDIO: "audio",
}
_MEDIA_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# What multipart framing (boundaries, part headers, a small text field or two) may add to the file's bytes.
FRAMING_BYTES = 64 * 1024
# The bytes per UploadMedia message (the server takes 1 MiB messages).
CHUNK_BYTES = 256 * 1024


class MediaResource(_Answer, kw_only=True):
    media_id: str
    owner: str
    kind: MediaWord
    content_type: str
    size_bytes: int
    file_name: str
    width: int
    height: int
    duration_seconds: float
    create_time: Time


class MediaList(_Answer):
    media: list[MediaResource]
    next_page_token: str


MEDIA_ANSWER_TYPES: tuple[type[msgspec.Struct], ...] = (MediaResource, MediaList)


def media_resource(media: job_service_pb2.Media) -> MediaResource:
    return MediaResource(
        media_id=media.id,
        owner=media.owner,
        kind=_KIND_WORDS.get(media.kind, "image"),
        content_type=media.content_type,
        size_bytes=media.size_bytes,
        file_name=media.file_name,
        width=media.width,
        height=media.height,
        duration_seconds=round(media.duration_seconds, 3),
        create_time=timestamp(media, "create_time"),
    )


def _json(resource: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(resource), status, headers=headers, media_type="application/json")


def _checked_media_id(request: Request) -> str:
    media_id = str(request.path_params.get("mediaId", ""))
    if not _MEDIA_ID.match(media_id):
        raise ApiError(errors.MEDIA_NOT_FOUND, "No media with this id.")
    return media_id


class _FilePart:
    """Callbacks of python-multipart's parser that keep the bytes of the one part named ``file``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.file_name: str | None = None
        self.pending: list[bytes] = []
        self.size = 0
        self.finished = False
        self.error: ApiError | None = None
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._in_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add("_header_field", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("_header_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False

    def _header_end(self) -> None:
        if self._header_field.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") != b"file":
            return  # another field: its bytes are dropped
        if self.file_name is not None:
            self.error = ApiError(errors.MEDIA_UPLOAD_INVALID, "Send one file per request.")
            return
        self._in_file = True
        self.file_name = options.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file or self.error is not None:
            return
        self.size += end - start
        if self.size > self.limit:
            self.error = ApiError(errors.MEDIA_TOO_LARGE, f"The file exceeds {self.limit} bytes.")
            return
        self.pending.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._in_file:
            self.finished = True
        self._in_file = False

    def take(self) -> list[bytes]:
        taken, self.pending = self.pending, []
        return taken


async def upload_media(request: Request) -> Response:
    """``POST /api/media``: JobService.UploadMedia, streamed."""
    state = bridge_state(request)
    limit = state.settings.max_upload_bytes
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            errors.UNSUPPORTED_MEDIA_TYPE,
            "An upload needs Content-Type: multipart/form-data with a boundary.",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FRAMING_BYTES:
        raise ApiError(errors.MEDIA_TOO_LARGE, f"The body is {declared} bytes; the file limit is {limit}.")
    part = _FilePart(limit)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    calls: list[
        grpc.aio.StreamUnaryCall[job_service_pb2.UploadMediaRequest, job_service_pb2.UploadMediaResponse]
    ] = []

    def refuse(error: ApiError) -> None:
        part.error = part.error or error
        calls[0].cancel()

    async def messages() -> AsyncIterator[job_service_pb2.UploadMediaRequest]:
        sent_metadata = False
        buffered: list[bytes] = []
        buffered_size = 0
        received = 0
        try:
            async for body in request.stream():
                received += len(body)
                if received > limit + FRAMING_BYTES:
                    part.error = part.error or ApiError(
                        errors.MEDIA_TOO_LARGE, f"The body exceeds {limit} bytes."
                    )
                if part.error is None:
                    parser.write(body)
                if part.error is not None:
                    refuse(part.error)
                    return
                if part.file_name is not None and not sent_metadata:
                    sent_metadata = True
                    yield job_service_pb2.UploadMediaRequest(
                        metadata=job_service_pb2.UploadMediaMetadata(file_name=part.file_name[:255])
                    )
                for data in part.take():
                    buffered.append(data)
                    buffered_size += len(data)
                if buffered_size >= CHUNK_BYTES:
                    yield job_service_pb2.UploadMediaRequest(chunk=b"".join(buffered))
                    buffered, buffered_size = [], 0
            parser.finalize()
        except Exception as malformed:  # python-multipart's errors, a client that went away
            refuse(
                ApiError(
                    errors.MEDIA_UPLOAD_INVALID,
                    f"The multipart body is malformed ({type(malformed).__name__}).",
                )
            )
            return
        if part.error is not None or part.file_name is None or not part.finished:
            refuse(
                part.error or ApiError(errors.MEDIA_UPLOAD_INVALID, "The body holds no complete `file` part.")
            )
            return
        if buffered:
            yield job_service_pb2.UploadMediaRequest(chunk=b"".join(buffered))

    call = state.jobs.UploadMedia(messages(), metadata=grpc_metadata())
    calls.append(call)
    try:
        reply = await call
    except (grpc.RpcError, asyncio.CancelledError):
        if part.error is not None:
            raise part.error from None
        raise
    media = reply.media
    return _json(media_resource(media), 201, headers={"Location": f"/api/media/{media.id}"})


async def list_media(request: Request) -> Response:
    params = request.query_params
    page_size = page_size_param(params)
    reply = await bridge_state(request).jobs.ListMedia(
        job_service_pb2.ListMediaRequest(page_size=page_size, page_token=params.get("pageToken", "")),
        metadata=grpc_metadata(),
    )
    return _json(MediaList([media_resource(m) for m in reply.media], reply.next_page_token))


async def get_media(request: Request) -> Response:
    reply = await bridge_state(request).jobs.GetMedia(
        job_service_pb2.GetMediaRequest(media_id=_checked_media_id(request)), metadata=grpc_metadata()
    )
    return _json(media_resource(reply.media))


async def delete_media(request: Request) -> Response:
    await bridge_state(request).jobs.DeleteMedia(
        job_service_pb2.DeleteMediaRequest(media_id=_checked_media_id(request)), metadata=grpc_metadata()
    )
    return Response(status_code=204)
