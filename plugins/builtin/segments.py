"""Scene-parallel rendering of the moving picture (``RenderSettings.segments`` > 1), on one machine or many.

The timeline (``motion.timeline``: the same clips, joins and frame math as the single render) is cut into
at most ``segments`` frame ranges. A cut is only ever where no transition is running: at a scene change
that is a hard cut, or at the first frame after a transition has finished (the incoming scene alone), so
every ``xfade`` is rendered whole inside one segment. Each segment is its own ffmpeg, run concurrently as a
subtask (``StageContext.run_subtask``): in the work dir on the embedded backend, on any free worker on NATS
(server/storage/nats/subtasks.py), its arguments naming the work dir's files relative to it. The clips it
touches go through the same filters as in the single graph, the joined picture is trimmed to the segment's
frames, and captions are drawn at the timeline's times (the frames' timestamps
are moved to the timeline's clock before libass and back to zero after it, so the same ASS file serves
every segment). Every segment is encoded video only with the single render's encoder settings plus closed
GOPs (``-flags +cgop``; an encode always starts on a keyframe) and ends after exactly its frame count, so
the frames of all segments add up to the single render's. The video is then joined by the concat demuxer
without re-encoding (``-c:v copy``), with the audio mixed once over the whole timeline (``mix.py``), the
chapters, the soft subtitles and ``+faststart``, as the single render writes them.

At most ``segment_workers`` segments (one per core by default; on NATS all of them, and the fair queue
decides) encode at once, taken in timeline order, and as each run of segments from the start is finished
the stage publishes it as a growing preview with its sound (preview.py).

Not built yet: segments for the still-card path (the concat demuxer is cheap to split, but still cards
render in one ffmpeg, as before).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reelcast.plugins.builtin.motion import Clip, Join


def concat_quote(path: str) -> str:
    """A path as a quoted ffconcat token: single quotes, each inner quote as '\\''."""
    return "'" + path.replace("'", "'\\''") + "'"


def concat_listing(paths: Sequence[Path]) -> str:
    """An ffconcat file that plays ``paths`` one after the other (the segments' join, a preview)."""
    return "ffconcat version 1.0\n" + "".join(f"file {concat_quote(str(path))}\n" for path in paths)


@dataclass(frozen=True)
class Segment:
    """Frames ``first`` to ``end`` (exclusive) of the output, made from ``clips`` (their indices)."""

    first: int
    end: int
    clips: tuple[int, ...]

    @property
    def frames(self) -> int:
        return self.end - self.first


def rendered_frames(total: float, fps: int, joins: Sequence[Join]) -> int:
    """How many frames the single render keeps under ``-t total`` at ``-fps_mode cfr``: it depends on the
    filter that made the last frames (measured with this ffmpeg, two colour sources joined, 99.3 and 98.4
    frames long): after ``xfade`` the count is rounded (99, 98), after the ``concat`` filter of a hard cut
    it is rounded up (100, 99), as the timeline's ``ceil`` covers it."""
    exact = total * fps
    if joins and joins[-1].frames:
        return max(1, math.floor(exact + 0.5 + 1e-9))
    return max(1, math.ceil(exact - 1e-6))


def cut_points(joins: Sequence[Join], end: int) -> list[int]:
    """The frames where a segment may start: a hard cut's scene change, or the frame after a transition."""
    points = {join.offset + join.frames for join in joins}
    return sorted(point for point in points if 0 < point < end)


def plan_segments(clips: Sequence[Clip], joins: Sequence[Join], end: int, count: int) -> list[Segment]:
    """At most ``count`` segments covering frames 0..``end``, cut at the allowed points nearest to equal
    shares (fewer when the timeline has fewer allowed points)."""
    points = cut_points(joins, end)
    chosen: list[int] = []
    for share in range(1, count):
        target = end * share / count
        later = [point for point in points if point > (chosen[-1] if chosen else 0)]
        if not later:
            break
        chosen.append(min(later, key=lambda point: abs(point - target)))
    segments = []
    for first, last in itertools.pairwise([0, *chosen, end]):
        touched = tuple(
            index
            for index, clip in enumerate(clips)
            if clip.first < last and clip.first + clip.frames > first
        )
        segments.append(Segment(first, last, touched))
    return segments


def segment_timeline(
    clips: Sequence[Clip], joins: Sequence[Join], segment: Segment
) -> tuple[list[Clip], list[Join], int]:
    """The segment's clips and joins renumbered from 0 (input and label numbers of ``video_graph``) on a
    clock starting at its first clip's first frame, and that frame's number in the output."""
    origin = clips[segment.clips[0]].first
    local = {index: number for number, index in enumerate(segment.clips)}
    own_clips = [
        Clip(scene=local[index], first=clips[index].first - origin, frames=clips[index].frames, lead=0)
        for index in segment.clips
    ]
    own_joins = [
        Join(index=local[join.index], offset=join.offset - origin, frames=join.frames)
        for join in joins
        if join.index in local and join.index - 1 in local
    ]
    return own_clips, own_joins, origin


def segment_window(segment: Segment, origin: int, fps: int) -> list[str]:
    """Filters taking the segment's frames out of its joined picture and putting them on the timeline's
    clock (for the captions that follow); :func:`segment_rebase` puts them back to zero for the encoder."""
    start = segment.first - origin
    return [
        f"trim=start_frame={start}:end_frame={start + segment.frames}",
        f"setpts=(N+{segment.first})/({fps}*TB)",
    ]


def segment_rebase(fps: int) -> str:
    return f"setpts=N/({fps}*TB)"
