"""The video filter graph for moving pictures: a slow push or pan per scene (Ken Burns), transitions between
scenes (``xfade``), and uploaded clips as scene backgrounds.

Why ``zoompan`` on an upscaled still: zoompan crops at whole pixels of its input, so on the frame-sized
image a slow push steps visibly (jitter). The still is scaled up ``UPSCALE`` times first, so each step is
a fraction of an output pixel. ``scale`` with per-frame expressions followed by ``crop`` was measured too
(1280x720, 10 s, 30 fps, preset veryfast: 3.35 s of CPU against zoompan's 3.46 s): no faster, and it steps
by whole output pixels, since the scaled size is rounded every frame. Each still is read ONCE (one frame,
no ``-loop 1``): zoompan's ``d`` makes every frame of the scene from it.

How a transition is taken (the overlap): the narration's length stays the video's length and each scene
change stays on the narration's scene time. A transition of ``t`` frames is centred on the change: the
outgoing scene runs ``t/2`` frames past its end and the incoming one starts ``t/2`` frames early, so the
blend is exactly half-way at the narration's scene time, and the sum of the clips minus the overlaps is
the narration's length. ``t`` is ``TRANSITION_SECONDS``, or less where a neighbouring scene is short
(at most ``TRANSITION_SHARE`` of the shorter one), and 0 (a cut) where a scene has too few frames.

Frame rate: every frame of a moving picture differs, so a variable frame rate would save nothing; motion
and transitions render at a constant frame rate only, and a spec asking for both is refused
(``E320-MOTION_NEEDS_CONSTANT_FRAME_RATE``; the spec's check says so at creation).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reelcast.jobs.v1 import job_pb2

# How far a push goes (the zoom from 1 to 1 + ZOOM_SPAN) and how much of the frame a pan crosses.
ZOOM_SPAN = 0.12
UPSCALE = 2
TRANSITION_SECONDS = 0.5
TRANSITION_SHARE = 0.3
# The xfade transition for each Transition value (the hard cut has none).
# RGB frames become 4:2:0 through the BT.709 matrix in limited range, and the frames say so (the encoder
# writes the colour tags from the frames: output options alone left the primaries and transfer unknown).
BT709_TAGS = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
BT709_CONVERSION = f"scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,{BT709_TAGS}"
XFADE_NAMES = {
    job_pb2.TRANSITION_CROSSFADE: "fade",
    job_pb2.TRANSITION_SLIDE: "slideleft",  # the next scene comes in from the right
    job_pb2.TRANSITION_WIPE: "wiperight",  # the next scene is uncovered from the left edge
    job_pb2.TRANSITION_FADE_BLACK: "fadeblack",
}


def motion_of(plan: job_pb2.Plan, variable_frame_rate: bool = False) -> job_pb2.Motion.ValueType:
    """The plan's motion with its default: Ken Burns, or still cards at a variable frame rate."""
    if plan.motion != job_pb2.MOTION_UNSPECIFIED:
        return plan.motion
    return job_pb2.MOTION_NONE if variable_frame_rate else job_pb2.MOTION_KEN_BURNS


def transition_of(plan: job_pb2.Plan, variable_frame_rate: bool = False) -> job_pb2.Transition.ValueType:
    """The plan's transition with its default: a crossfade, or hard cuts at a variable frame rate."""
    if plan.transition != job_pb2.TRANSITION_UNSPECIFIED:
        return plan.transition
    return job_pb2.TRANSITION_NONE if variable_frame_rate else job_pb2.TRANSITION_CROSSFADE


def uses_filter_graph(spec: job_pb2.JobSpec) -> bool:
    """Whether the render needs this module's graph (motion, transitions or a clip background) rather
    than the concat demuxer's still cards."""
    vfr = spec.render.variable_frame_rate
    return (
        motion_of(spec.plan, vfr) != job_pb2.MOTION_NONE
        or transition_of(spec.plan, vfr) != job_pb2.TRANSITION_NONE
    )


@dataclass(frozen=True)
class Clip:
    """One scene's piece of the picture, in frames of the output: it starts at ``first`` (``lead`` frames
    before its scene's start, for the transition in) and lasts ``frames``."""

    scene: int
    first: int
    frames: int
    lead: int


@dataclass(frozen=True)
class Join:
    """How clip ``index`` follows the chain so far: a transition of ``frames`` frames starting at frame
    ``offset`` of the output, or a cut (``frames == 0``)."""

    index: int
    offset: int
    frames: int


def timeline(
    starts: Sequence[float], total: float, fps: int, transitions: bool
) -> tuple[list[Clip], list[Join]]:
    """The clips and joins for scenes starting at ``starts`` (seconds) in a narration of ``total`` seconds.

    Scene changes are rounded to the frame grid; the picture covers the whole narration (the last frame
    may run past it by less than one frame, and the encoder's ``-t`` ends it with the sound)."""
    end = max(1, math.ceil(total * fps - 1e-6))
    cuts = [min(end, max(0, round(start * fps))) for start in starts] + [end]
    cuts[0] = 0
    lengths = [b - a for a, b in itertools.pairwise(cuts)]
    overlap = [0] * (len(starts) + 1)  # overlap[k]: frames of the transition into scene k
    if transitions:
        for k in range(1, len(starts)):
            shorter = min(lengths[k - 1], lengths[k])
            frames = min(round(TRANSITION_SECONDS * fps), math.floor(shorter * TRANSITION_SHARE))
            frames -= frames % 2  # centred: half on each side of the change
            overlap[k] = frames if frames >= 2 else 0
    clips = [
        Clip(scene=k, first=cuts[k] - overlap[k] // 2, frames=0, lead=overlap[k] // 2)
        for k in range(len(starts))
    ]
    clips = [
        Clip(clip.scene, clip.first, cuts[k + 1] + overlap[k + 1] // 2 - clip.first, clip.lead)
        for k, clip in enumerate(clips)
    ]
    joins = [Join(k, cuts[k] - overlap[k] // 2, overlap[k]) for k in range(1, len(starts))]
    return clips, joins


def ken_burns_filter(number: int, frames: int, width: int, height: int, fps: int) -> str:
    """The push or pan of scene ``number`` over ``frames`` frames of a ``width`` x ``height`` still:
    push in, pan right, pull out, pan left, in turn (so neighbours never move alike)."""
    last = max(1, frames - 1)
    progress = f"on/{last}"
    move = number % 4
    if move in (0, 2):
        zoom = f"1+{ZOOM_SPAN}*{progress}" if move == 0 else f"{1 + ZOOM_SPAN}-{ZOOM_SPAN}*{progress}"
        x, y = "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"
    else:
        zoom = f"{1 + ZOOM_SPAN}"
        x = f"(iw-iw/zoom)*{progress}" if move == 1 else f"(iw-iw/zoom)*(1-{progress})"
        y = "(ih-ih/zoom)/2"
    return (
        f"scale={width * UPSCALE}:{height * UPSCALE}:flags=bicubic,"
        f"zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"
    )


def still_filter(frames: int) -> str:
    """A still held for ``frames`` frames (motion off, transitions on)."""
    return f"loop=loop={max(0, frames - 1)}:size=1:start=0"


def clip_filter(frames: int, width: int, height: int, fps: int) -> str:
    """An uploaded clip filling the frame (scaled to cover, centre-cropped) for ``frames`` frames; the
    input is looped by ``-stream_loop`` and cut here."""
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1,"
        f"fps={fps},trim=end_frame={frames}"
    )


def video_graph(
    clips: Sequence[Clip],
    joins: Sequence[Join],
    sources: Sequence[str],
    transition: job_pb2.Transition.ValueType,
    fps: int,
    captions: Sequence[str],
    label: str = "video",
) -> str:
    """The filtergraph: input ``k`` becomes clip ``k`` through ``sources[k]`` (a filter chain), the clips are
    joined, then ``captions`` filters draw over the joined picture (so captions never move with it), and the
    result is converted to BT.709 4:2:0 as ``[label]``."""
    xfade = XFADE_NAMES.get(transition, "fade")
    chains = []
    for clip, source in zip(clips, sources, strict=True):
        # Every clip on one clock (frame numbers at 1/fps), in the encoder's colour space: xfade needs
        # the same time base, size and format on both sides.
        chains.append(
            f"[{clip.scene}:v]{source},setsar=1,settb=1/{fps},setpts=N,"
            f"scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[c{clip.scene}]"
        )
    current = "c0"
    for join in joins:
        joined = f"j{join.index}"
        if join.frames:
            chains.append(
                f"[{current}][c{join.index}]xfade=transition={xfade}:duration={join.frames / fps:.6f}:"
                f"offset={join.offset / fps:.6f}[{joined}]"
            )
        else:
            chains.append(f"[{current}][c{join.index}]concat=n=2:v=1:a=0[{joined}]")
        current = joined
    tail = [*captions, "format=yuv420p", BT709_TAGS]
    chains.append(f"[{current}]{','.join(tail)}[{label}]")
    return ";".join(chains)


def background_clip_ids(script_scenes: Sequence[Mapping[str, object]], spec: job_pb2.JobSpec) -> list[str]:
    """Each scene's ``background_media_id`` ("" for none): from the script artifact when it carries one,
    else from the spec's own script (the same scenes, in order, when the user supplied them)."""
    supplied = list(spec.script) if len(spec.script) == len(script_scenes) else []
    found = []
    for index, scene in enumerate(script_scenes):
        value = scene.get("background_media_id")
        if not isinstance(value, str) or not value:
            value = supplied[index].background_media_id if supplied else ""
        found.append(value)
    return found


def image_input(path: str, fps: int) -> list[str]:
    """A still as ONE frame (no ``-loop``: the filter makes the scene's frames)."""
    return ["-framerate", str(fps), "-i", path]


def clip_input(path: str, frames: int, fps: int) -> list[str]:
    """An uploaded clip, looped as often as its scene needs and read no longer than that."""
    return ["-stream_loop", "-1", "-t", f"{(frames + 1) / fps:.6f}", "-an", "-i", path]
