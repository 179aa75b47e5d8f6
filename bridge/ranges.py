"""HTTP byte ranges (RFC 9110 §14) over ``ReadJobArtifact``, so a ``<video>`` element can seek.

Only single ranges are served; a multi-range or malformed ``Range`` header is ignored and the whole file is
sent with 200, which RFC 9110 allows and every player handles. The bytes come from the gRPC server, so the
bridge needs no shared disk.

A position past the last byte any file can have (file offsets are signed 64-bit, as ``ReadJobArtifact``'s
are) is unsatisfiable, as nginx treats one that overflows its offsets: 416, never a number sent on that cannot
be encoded. A 416 names the file's size, so it is only answered after the server has shown the caller the
file: another user's job stays 404 whatever the range.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from reelcast.bridge.problems import ApiError
from reelcast.jobs import errors
from reelcast.jobs.v1 import job_service_pb2

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

# ASCII digits only: int() would also read other scripts' digits, which no client sends.
_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
# The last byte of the largest file a signed 64-bit offset can address.
MAX_BYTE_POSITION = 2**63 - 2


@dataclass(frozen=True)
class ByteRange:
    """A requested range before the size is known: ``first-last``, ``first-`` or the suffix ``-length``."""

    first: int | None
    last: int | None

    @property
    def addressable(self) -> bool:
        """Whether both positions can be bytes of a file (a suffix is a length, which any number can be)."""
        if self.first is None:
            return True
        return self.first <= MAX_BYTE_POSITION and (self.last is None or self.last <= MAX_BYTE_POSITION)

    def resolve(self, size: int) -> tuple[int, int] | None:
        """Inclusive (start, end) within ``size`` bytes, or None when unsatisfiable."""
        if not self.addressable:
            return None
        if self.first is None:
            if not self.last or size == 0:
                return None
            return max(0, size - self.last), size - 1
        if self.first >= size:
            return None
        end = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, end


def parse_range(header: str | None) -> ByteRange | None:
    """The single range of a ``Range`` header; None to serve the whole file."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    first = int(first_text) if first_text else None
    last = int(last_text) if last_text else None
    if first is not None and last is not None and last < first:
        return None
    return ByteRange(first, last)


ArtifactCall = grpc.aio.UnaryStreamCall[
    job_service_pb2.ReadJobArtifactRequest, job_service_pb2.ReadJobArtifactResponse
]


@dataclass
class ArtifactStream:
    """An open ``ReadJobArtifact`` whose first chunk was read (it carries the size and the type)."""

    total_size: int
    content_type: str
    start: int
    end: int  # inclusive; -1 for an empty file
    chunks: AsyncIterator[bytes]


async def open_artifact(
    stub: JobServiceAsyncStub,
    job_id: str,
    kind: job_service_pb2.ArtifactKind.ValueType,
    requested: ByteRange | None,
    metadata: tuple[tuple[str, str], ...],
    preview_revision: int = 0,
) -> ArtifactStream:
    """Opens the artifact for ``requested`` (None: all of it). Raises :class:`ApiError` (416 with
    ``Content-Range: bytes */size`` when the range lies outside the file) or ``grpc.RpcError``."""
    offset, length = 0, 0
    if requested is not None and requested.first == 0 and requested.addressable:
        length = requested.last + 1 if requested.last is not None else 0
    elif requested is not None:
        # A suffix range needs the size first, and so does any 416 (its Content-Range names the size).
        probe_call, probe = await _first_chunk(stub, job_id, kind, 0, 1, metadata, preview_revision)
        probe_call.cancel()
        size = probe.total_size
        resolved = requested.resolve(size)
        if resolved is None:
            raise _unsatisfiable(size)
        offset, length = resolved[0], resolved[1] - resolved[0] + 1
    call, first = await _first_chunk(stub, job_id, kind, offset, length, metadata, preview_revision)
    size = first.total_size
    if requested is None:
        start, end = 0, size - 1
    else:
        resolved = requested.resolve(size)
        if resolved is None:
            call.cancel()
            raise _unsatisfiable(size)
        start, end = resolved

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if first.data:
                yield first.data
            while True:
                chunk = await call.read()
                if chunk is grpc.aio.EOF:
                    return
                assert isinstance(chunk, job_service_pb2.ReadJobArtifactResponse)
                if chunk.data:
                    yield chunk.data
        finally:
            call.cancel()

    return ArtifactStream(size, first.content_type or "application/octet-stream", start, end, chunks())


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(errors.RANGE_NOT_SATISFIABLE, headers={"Content-Range": f"bytes */{size}"})


async def _first_chunk(
    stub: JobServiceAsyncStub,
    job_id: str,
    kind: job_service_pb2.ArtifactKind.ValueType,
    offset: int,
    length: int,
    metadata: tuple[tuple[str, str], ...],
    preview_revision: int,
) -> tuple[ArtifactCall, job_service_pb2.ReadJobArtifactResponse]:
    request = job_service_pb2.ReadJobArtifactRequest(
        job_id=job_id, kind=kind, offset=offset, length=length, preview_revision=preview_revision
    )
    call = stub.ReadJobArtifact(request, metadata=metadata)
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF:
        call.cancel()
        return call, job_service_pb2.ReadJobArtifactResponse()
    assert isinstance(first, job_service_pb2.ReadJobArtifactResponse)
    return call, first
