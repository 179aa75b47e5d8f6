"""The uploaded files a running job's stages may ask for (``StageContext.media``): looked up before each
stage, so that media deleted while the job waited or ran is gone for the next stage, which then fails with
``E451-MEDIA_NOT_AVAILABLE`` rather than crashing. Only the job owner's media resolves."""

from __future__ import annotations

from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.stage import MediaFile
from reelcast.server.media.references import KIND_WORDS, scene_references, spec_references
from reelcast.server.media.store import MediaStore


async def job_media(store: MediaStore, job: job_pb2.Job, cache_dir: Path) -> dict[str, MediaFile]:
    """Every media id the job's spec (and its reviewed scenes) refers to that still exists and is its
    owner's, as local files: the stored file itself on the embedded backend, a copy in ``cache_dir`` fetched
    from the object store on NATS."""
    references = [*spec_references(job.spec), *scene_references(job.review.scenes, "review.scenes")]
    found: dict[str, MediaFile] = {}
    for media_id in dict.fromkeys(reference.media_id for reference in references):
        media = await store.get(media_id)
        if media is None or media.owner != job.owner:
            continue
        path = await store.local_file(media, cache_dir)
        if path is None:
            continue
        found[media_id] = MediaFile(
            media_id=media.id,
            kind=KIND_WORDS.get(media.kind, "unknown"),
            path=path,
            content_type=media.content_type,
            width=media.width,
            height=media.height,
            duration_seconds=media.duration_seconds,
        )
    return found
