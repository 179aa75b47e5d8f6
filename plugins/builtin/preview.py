"""The growing preview of a scene-parallel render (segments.py): as the segments finish in timeline order,
the finished run from the start is joined with its part of the sound into a playable MP4 and published
(``StageContext.publish_preview``), while the rest still renders.

A preview is the segments copied (never re-encoded, so it costs a fraction of a second of one core beside
the encoders) behind the sound mixed for the whole video (mix.py), cut to the same length, with
``+faststart`` so that a browser plays it from its first bytes. Each preview is a new file
(``previews/preview-<revision>.mp4``); the one before it is kept so that a player still reading it is not
cut off, older ones go. Only runs from the start are published: a player plays from the beginning, and a
later segment is worth nothing to it until every one before it is there. A preview that fails to build or
to publish is logged and skipped: the preview is a view of the render, never a reason for it to fail (a
job taken over by another worker meanwhile fails this one's next write of its own anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.plugins import StageContext
from reelcast.plugins.builtin.segments import concat_listing

PREVIEWS_FOLDER = "previews"


def preview_arguments(
    *, listing: str, audio_path: str, audio_encoding: Sequence[str], seconds: float, output: str
) -> list[str]:
    """ffmpeg's arguments for one preview: the segments of ``listing`` copied, the sound cut to them."""
    return [
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", listing,
        "-i", audio_path,
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "copy", *audio_encoding,
        "-t", f"{seconds:.6f}", "-movflags", "+faststart", "-f", "mp4", output,
    ]  # fmt: skip


class GrowingPreview:
    """Follows the segments as they finish and publishes the longest finished run from the start."""

    def __init__(
        self,
        ctx: StageContext,
        ffmpeg: str,
        segment_files: Sequence[Path],
        segment_seconds: Sequence[float],
        *,
        audio_path: str,
        audio_encoding: Sequence[str],
        total: float,
    ) -> None:
        self.ctx = ctx
        self.ffmpeg = ffmpeg
        self.segment_files = list(segment_files)
        self.segment_seconds = list(segment_seconds)
        self.audio_path = audio_path
        self.audio_encoding = list(audio_encoding)
        self.total = total
        self.done = [False] * len(segment_files)
        self.published = 0  # segments in the latest preview
        self.revision = 0
        self._lock = asyncio.Lock()

    def ready(self) -> int:
        """How many segments from the start are finished."""
        count = 0
        while count < len(self.done) and self.done[count]:
            count += 1
        return count

    async def segment_done(self, number: int) -> None:
        self.done[number] = True
        async with self._lock:  # one preview at a time; a later call builds the longest run there is then
            ready = self.ready()
            # The whole run is the video itself, joined with its sidecars right after: no preview of it.
            if ready <= self.published or ready == len(self.done):
                return
            try:
                await self._publish(ready)
            except Exception as failure:  # ffmpeg, or storing the file or its event: the render goes on
                if self.ctx.cancelled:
                    raise
                self.ctx.log.warning(
                    "job %s: preview of %d segments skipped: %s", self.ctx.job_id, ready, failure
                )

    async def _publish(self, ready: int) -> None:
        revision = self.revision + 1
        folder = self.ctx.path(PREVIEWS_FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        listing = folder / f"preview-{revision}.ffconcat"
        listing.write_text(concat_listing(self.segment_files[:ready]), encoding="utf-8")
        relative = f"{PREVIEWS_FOLDER}/preview-{revision}.mp4"
        seconds = sum(self.segment_seconds[:ready])
        arguments = preview_arguments(
            listing=str(listing),
            audio_path=self.audio_path,
            audio_encoding=self.audio_encoding,
            seconds=seconds,
            output=str(self.ctx.path(relative)),
        )
        result = await self.ctx.run_subprocess([self.ffmpeg, *arguments], graceful_stop=b"q")
        listing.unlink(missing_ok=True)
        if self.ctx.cancelled:
            raise ReelcastError(errors.CANCELLED)
        if result.returncode != 0:
            raise ReelcastError(
                errors.FFMPEG_RUNTIME, f"The preview's ffmpeg exited with {result.returncode}."
            )
        await self.ctx.publish_preview(relative, seconds, self.total)
        self.revision, self.published = revision, ready
        (folder / f"preview-{revision - 2}.mp4").unlink(missing_ok=True)
