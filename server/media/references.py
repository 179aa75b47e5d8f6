"""The media ids a job spec refers to, and the check CreateJob (and a review's edited scenes) makes of them:
each must exist, be the caller's own and be of a kind its field takes. Another user's id fails exactly as a
missing one does, so ids cannot be probed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.jobs.violations import FieldViolation
from reelcast.server.media.store import MediaStore

_IMAGE = job_service_pb2.MEDIA_KIND_IMAGE
_CLIP = job_service_pb2.MEDIA_KIND_CLIP
_AUDIO = job_service_pb2.MEDIA_KIND_AUDIO
# MediaFile.kind, the plugin API's word for each kind.
KIND_WORDS = {_IMAGE: "image", _CLIP: "clip", _AUDIO: "audio"}


@dataclass(frozen=True)
class MediaReference:
    field: str
    media_id: str
    kinds: frozenset[int]
    needs: str


def scene_references(scenes: Iterable[job_pb2.Scene], prefix: str) -> list[MediaReference]:
    return [
        MediaReference(
            f"{prefix}[{index}].background_media_id",
            scene.background_media_id,
            frozenset({_IMAGE, _CLIP}),
            "an image or a clip",
        )
        for index, scene in enumerate(scenes)
        if scene.background_media_id
    ]


def spec_references(spec: job_pb2.JobSpec) -> list[MediaReference]:
    found = scene_references(spec.script, "script")
    if spec.logo.media_id:
        found.append(MediaReference("logo.media_id", spec.logo.media_id, frozenset({_IMAGE}), "an image"))
    if spec.music.media_id:
        found.append(MediaReference("music.media_id", spec.music.media_id, frozenset({_AUDIO}), "audio"))
    return found


async def check_references(store: MediaStore, references: Sequence[MediaReference], owner: str) -> None:
    """Raises ``E049-MEDIA_REFERENCE_UNKNOWN`` (any unknown or foreign id) or ``E050-MEDIA_KIND_MISMATCH``,
    with one field violation per bad reference."""
    unknown: list[FieldViolation] = []
    mismatched: list[FieldViolation] = []
    for reference in references:
        media = await store.get(reference.media_id) if len(reference.media_id) <= 128 else None
        if media is None or media.owner != owner:
            unknown.append(FieldViolation(reference.field, "is not a media id of yours"))
        elif media.kind not in reference.kinds:
            word = KIND_WORDS.get(media.kind, "unknown")
            mismatched.append(FieldViolation(reference.field, f"must name {reference.needs}, not {word}"))
    if unknown:
        summary = "; ".join(f"{v.field} {v.description}" for v in unknown)
        raise MediaReferenceError(ReelcastError(errors.MEDIA_REFERENCE_UNKNOWN, summary), unknown)
    if mismatched:
        summary = "; ".join(f"{v.field} {v.description}" for v in mismatched)
        raise MediaReferenceError(ReelcastError(errors.MEDIA_KIND_MISMATCH, summary), mismatched)


class MediaReferenceError(Exception):
    def __init__(self, error: ReelcastError, violations: list[FieldViolation]) -> None:
        super().__init__(error.message)
        self.error = error
        self.violations = violations
