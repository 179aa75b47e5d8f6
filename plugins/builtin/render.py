"""The built-in render stage: the scene pictures and the narration into an H.264/AAC MP4 with ffmpeg.

Two paths. With motion or transitions (the default, ``plan.motion``/``plan.transition``) the picture is one
filter graph (``motion.py``): each scene's caption-free image pushed or panned, or its uploaded clip, joined
by ``xfade``, captions drawn over the joined picture by libass. With still cards and cuts (``MOTION_NONE``
and ``TRANSITION_NONE``) the frames go through ffmpeg's concat demuxer, one entry per image with its
duration; never ``-loop 1`` per image, which is slow and rounds every duration to whole frames. Constant
frame rate (the default) resamples that timeline with the ``fps`` filter; variable frame rate keeps one
frame per image and is much faster (still cards only: E320 otherwise). No caption text reaches ffmpeg's
command line: burned sentence captions are in the still frames (or, with motion, in an ASS file), word
captions are drawn by libass from an ASS file (``ass.py``), soft captions come from the SRT file, and
arguments go to ffmpeg as a list, never through a shell. At a variable frame rate the frames are split at
every caption change, so that each word's highlight gets a frame of its own.

The file: BT.709 colour (converted and tagged), the audio track's language from the brief, a chapter per
scene (``chapters.py``), ``+faststart``; the narration's length is the video's length.

Progress is ffmpeg's ``-progress pipe:1`` over the whole graph: ``out_time_us`` against the timeline's
length, clamped and never decreasing. The whole stderr goes to ``<data>/Logs/ffmpeg/{jobId}.log`` in the
seed's format.

With ``segments`` > 1 (``REELCAST_RENDER_SEGMENTS``) a moving picture is rendered as segments at once (on
this machine, or on NATS on any worker: ``ctx.run_subtask``) and joined without re-encoding
(``segments.py``, which also says what is not built yet).

Artifacts: ``video`` -> ``video.mp4``, ``subtitles`` -> ``captions.srt`` and ``webvtt`` -> ``captions.vtt``
(or none, without captions), ``captions_ass`` -> ``captions.ass`` (burned captions drawn by libass),
``ffmpeg_log`` (an absolute path).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import Frame, NarrationArtifact, VisualsArtifact, read_script
from reelcast.plugins.builtin.ass import FONTS_DIR, caption_fonts_dir, to_ass, to_sentence_ass
from reelcast.plugins.builtin.captions import (
    Cue,
    build_word_cues,
    burns_sentence_bands,
    to_srt,
    to_webvtt,
    uses_word_cues,
)
from reelcast.plugins.builtin.chapters import CHAPTERS_FILE, ffmetadata
from reelcast.plugins.builtin.ffmpeg import FfmpegLog, ProgressReader, ffmpeg_executable, run_ffmpeg
from reelcast.plugins.builtin.mix import prepare_audio
from reelcast.plugins.builtin.motion import (
    BT709_CONVERSION,
    Clip,
    Join,
    background_clip_ids,
    clip_filter,
    clip_input,
    image_input,
    ken_burns_filter,
    motion_of,
    still_filter,
    timeline,
    transition_of,
    uses_filter_graph,
    video_graph,
)
from reelcast.plugins.builtin.preview import GrowingPreview
from reelcast.plugins.builtin.segments import (
    Segment,
    concat_listing,
    concat_quote,
    plan_segments,
    rendered_frames,
    segment_rebase,
    segment_timeline,
    segment_window,
)
from reelcast.plugins.builtin.visuals import load_visuals
from reelcast.plugins.builtin.voice import load_narration
from reelcast.plugins.stage import Subtask

VIDEO_FILE = "video.mp4"
PARTIAL_VIDEO_FILE = "video.mp4.part"
SUBTITLE_FILE = "captions.srt"
WEBVTT_FILE = "captions.vtt"
ASS_FILE = "captions.ass"
CONCAT_FILE = "frames.ffconcat"
# The fonts libass may use for captions over a moving picture (ass.caption_fonts_dir).
FONTS_FOLDER = "fonts"


@dataclass(frozen=True)
class RenderSettings:
    """The render stage's knobs (``REELCAST_PLUGIN_RENDER_<FIELD>``, or the older names in ``env``)."""

    # An explicit ffmpeg; by default the one bundled with imageio-ffmpeg, never one from PATH.
    ffmpeg_path: str | None = field(default=None, metadata={"env": "REELCAST_FFMPEG"})
    # Extra encoder arguments appended to the render command (operators' tuning; also how tests force a
    # render failure through configuration rather than code).
    ffmpeg_extra_args: tuple[str, ...] = field(default=(), metadata={"env": "REELCAST_FFMPEG_EXTRA_ARGS"})
    render_timeout_seconds: float = field(default=3600.0, metadata={"env": "REELCAST_RENDER_TIMEOUT"})
    ffmpeg_log_max_bytes: int = field(default=1_048_576, metadata={"env": "REELCAST_FFMPEG_LOG_MAX_BYTES"})
    # libx264's speed/size trade-off; still images compress well even when fast.
    x264_preset: str = field(default="veryfast", metadata={"env": "REELCAST_X264_PRESET"})
    # Parallel segment encoders for a moving picture (segments.py): 1 is the single render; more cut the
    # timeline where no transition runs and join the segments without re-encoding.
    segments: int = field(default=1, metadata={"env": "REELCAST_RENDER_SEGMENTS"})
    # How many segment encoders run at once, in timeline order (0: one per core; on NATS every segment is
    # queued at once): the first segments then finish early, and the growing preview plays while the rest
    # renders.
    segment_workers: int = field(default=0, metadata={"env": "REELCAST_RENDER_SEGMENT_WORKERS"})
    # Publish a growing preview as the segments finish in timeline order (preview.py).
    previews: bool = field(default=True, metadata={"env": "REELCAST_RENDER_PREVIEWS"})

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise ValueError(f"segments must be 1 (the single render) or more, got {self.segments}")
        if self.segment_workers < 0:
            raise ValueError(f"segment_workers must be 0 (one per core) or more, got {self.segment_workers}")


def concat_script(frames: Sequence[Frame], fps: int) -> str:
    """The concat demuxer's input: each image with its duration, and one closing frame.

    The demuxer ignores the duration of the final entry, and the encoder gives the last frame only one
    frame interval: without more, a variable frame rate video's picture ended where its last image began
    (the sound went on alone, and the thumbnail found no frame). So the last image is listed once more for
    its last frame interval (``1/fps``), which ends the picture with the narration. Every entry reads its
    image at ``fps``: entries with different frame rates get their timestamps scaled wrongly by the
    demuxer, and image changes land on the same ``1/fps`` grid as at constant frame rate, where the ``fps``
    filter holds each image for its duration."""
    lines = ["ffconcat version 1.0"]
    if not frames:
        return "\n".join(lines) + "\n"
    interval = 1.0 / fps
    closing = min(interval, float(frames[-1]["duration"]) / 2)
    entries = [(frame["image"], float(frame["duration"])) for frame in frames]
    entries[-1] = (entries[-1][0], entries[-1][1] - closing)
    entries.append((entries[-1][0], closing))
    for image, duration in entries:
        lines.append(f"file {concat_quote(image)}")
        lines.append(f"option framerate {fps}")
        lines.append(f"duration {duration:.6f}")
    return "\n".join(lines) + "\n"


def _escaped(text: str, specials: str) -> str:
    return "".join("\\" + char if char in specials else char for char in text)


def _filter_value(text: str) -> str:
    """A filter option value (a path) escaped for both levels of ffmpeg's filtergraph syntax: first the
    option parser's specials, then the graph parser's."""
    return _escaped(_escaped(text, "\\':"), "\\'[],;")


def ass_filter(ass_path: str, fonts_dir: str) -> str:
    """The ``ass`` filter drawing ``ass_path`` with fonts from ``fonts_dir`` only."""
    return f"ass=filename={_filter_value(ass_path)}:fontsdir={_filter_value(fonts_dir)}"


def frames_split_at(frames: Sequence[Frame], moments: Sequence[float], fps: int) -> list[Frame]:
    """The frames with each one cut at the given moments (on the ``1/fps`` grid, at least one interval
    from its ends), so that at a variable frame rate every caption change starts a frame."""
    interval = 1.0 / fps - 1e-9
    # A frame at grid time t shows the captions of moment t, so a change is seen from the next grid time.
    grid = sorted({math.ceil(moment * fps - 1e-6) / fps for moment in moments})
    split: list[Frame] = []
    for frame in frames:
        start, end = float(frame["start"]), float(frame["start"]) + float(frame["duration"])
        cuts = [start]
        for moment in grid:
            if moment - cuts[-1] >= interval and end - moment >= interval:
                cuts.append(moment)
        cuts.append(end)
        split.extend({**frame, "start": a, "duration": b - a} for a, b in itertools.pairwise(cuts))
    return split


def render_arguments(
    spec: job_pb2.JobSpec,
    *,
    concat_path: str,
    audio_path: str,
    subtitle_path: str | None,
    output_path: str,
    ass_path: str | None = None,
    chapters_path: str | None = None,
    duration: float,
    preset: str,
    extra_args: Sequence[str],
) -> list[str]:
    """ffmpeg's arguments (without the program) for a render of still cards through the concat demuxer."""
    render = spec.render
    fps = render.fps or 30
    args = [*PROGRESS_ARGUMENTS, "-f", "concat", "-safe", "0", "-i", concat_path]
    args += audio_input(audio_path)
    soft = subtitle_path is not None
    if soft:
        args += ["-i", str(subtitle_path)]
    chapters_input = 2 + soft
    if chapters_path is not None:
        args += ["-f", "ffmetadata", "-i", chapters_path]
    args += ["-map", "0:v:0", "-map", "1:a:0"]
    if soft:
        args += ["-map", "2:s:0"]
    args += _video_encoding(render, preset, tune="stillimage")
    captions = [ass_filter(ass_path, str(FONTS_DIR))] if ass_path is not None else []
    if render.variable_frame_rate:
        # One frame per image, each as long as its entry: nothing to encode between changes.
        args += ["-vf", ",".join([*captions, BT709_CONVERSION])]
        args += ["-fps_mode", "vfr"]
    else:
        args += ["-vf", ",".join([f"fps={fps}", *captions, BT709_CONVERSION]), "-fps_mode", "cfr"]
        args += ["-r", str(fps)]
    args += _file_arguments(spec, soft=soft, chapters_input=chapters_input if chapters_path else None)
    # The narration's length is the video's length (see concat_script for how the picture reaches it).
    args += ["-t", f"{duration:.6f}"]
    args += list(extra_args)
    args += ["-f", "mp4", output_path]
    return args


def graph_arguments(
    spec: job_pb2.JobSpec,
    *,
    scene_inputs: Sequence[Sequence[str]],
    graph: str,
    audio_path: str,
    subtitle_path: str | None,
    output_path: str,
    chapters_path: str | None = None,
    duration: float,
    preset: str,
    extra_args: Sequence[str],
) -> list[str]:
    """ffmpeg's arguments for a render through the motion filter graph (``motion.py``): one input per
    scene (``scene_inputs``: each input's options and ``-i``), then the sound, then the sidecars."""
    render = spec.render
    fps = render.fps or 30
    args = list(PROGRESS_ARGUMENTS)
    for scene_input in scene_inputs:
        args += scene_input
    audio_index = len(scene_inputs)
    args += audio_input(audio_path)
    soft = subtitle_path is not None
    if soft:
        args += ["-i", str(subtitle_path)]
    if chapters_path is not None:
        args += ["-f", "ffmetadata", "-i", chapters_path]
    args += ["-filter_complex", graph, "-map", "[video]", "-map", f"{audio_index}:a:0"]
    if soft:
        args += ["-map", f"{audio_index + 1}:s:0"]
    args += _video_encoding(render, preset, tune=None)
    args += ["-fps_mode", "cfr", "-r", str(fps)]
    chapters_input = audio_index + 1 + soft
    args += _file_arguments(spec, soft=soft, chapters_input=chapters_input if chapters_path else None)
    args += ["-t", f"{duration:.6f}"]
    args += list(extra_args)
    args += ["-f", "mp4", output_path]
    return args


PROGRESS_ARGUMENTS = ("-hide_banner", "-y", "-nostats", "-progress", "pipe:1", "-stats_period", "0.2")


def audio_input(audio_path: str) -> list[str]:
    """The sound's input: the narration (or the mix made from it)."""
    return ["-i", audio_path]


def audio_encoding(spec: job_pb2.JobSpec) -> list[str]:
    """The sound's encoding, tagged with the brief's language. The mix (mix.py) is already 48 kHz with its
    own channels: stereo under music, mono without."""
    render = spec.render
    return [
        "-c:a", "aac", "-b:a", f"{render.audio_bitrate_kbps or 128}k", "-ar", "48000",
        "-metadata:s:a:0", f"language={_iso639_2(spec.brief.language)}",
    ]  # fmt: skip


def _video_encoding(render: job_pb2.RenderSpec, preset: str, tune: str | None) -> list[str]:
    args = ["-c:v", "libx264", "-preset", preset]
    if tune:
        args += ["-tune", tune]
    args += ["-pix_fmt", "yuv420p"]
    if render.video_bitrate_kbps:
        args += ["-b:v", f"{render.video_bitrate_kbps}k"]
    else:
        args += ["-crf", "23"]
    # A keyframe at least every 2 s keeps seeking cheap in players.
    args += ["-g", str((render.fps or 30) * 2)]
    # HD colour (BT.709 primaries, transfer and matrix, limited range), so players do not guess.
    args += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
    args += ["-color_range", "tv"]
    return args


def _file_arguments(spec: job_pb2.JobSpec, *, soft: bool, chapters_input: int | None) -> list[str]:
    args = audio_encoding(spec)
    if soft:
        args += ["-c:s", "mov_text", "-metadata:s:s:0", f"language={_iso639_2(spec.brief.language)}"]
    if chapters_input is not None:
        args += ["-map_chapters", str(chapters_input)]
    args += ["-movflags", "+faststart"]
    return args


# ISO 639-1 -> ISO 639-2/T (the form MP4 language tags use) for the languages the voices speak.
ISO639_2 = {
    "af": "afr", "am": "amh", "ar": "ara", "bg": "bul", "bn": "ben", "bs": "bos", "ca": "cat", "cs": "ces",
    "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "eo": "epo", "es": "spa", "et": "est",
    "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra", "ga": "gle", "gl": "glg", "gu": "guj", "he": "heb",
    "hi": "hin", "hr": "hrv", "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn",
    "ka": "kat", "kk": "kaz", "kn": "kan", "ko": "kor", "la": "lat", "lt": "lit", "lv": "lav", "mk": "mkd",
    "ml": "mal", "mr": "mar", "ms": "msa", "mt": "mlt", "nb": "nob", "ne": "nep", "nl": "nld", "no": "nor",
    "pa": "pan", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv", "sq": "sqi",
    "sr": "srp", "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "th": "tha", "tr": "tur", "uk": "ukr",
    "ur": "urd", "vi": "vie", "zh": "zho",
}  # fmt: skip


def _iso639_2(language: str) -> str:
    """The ISO 639-2 code of a BCP-47 tag's language (a three-letter one as it is), ``und`` if unknown."""
    primary = (language or "en").split("-", 1)[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    return ISO639_2.get(primary, "und")


async def run(ctx: StageContext) -> dict[str, Any]:
    narration = load_narration(ctx)
    visuals = load_visuals(ctx)
    frames: list[Frame] = visuals["frames"]
    if not frames:
        raise ReelcastError(errors.ARTIFACT_MISSING, "The visuals stage produced no frames.")
    # None when a stage is called directly (tests, bench) rather than by the runner: the defaults.
    settings: RenderSettings = ctx.settings if ctx.settings is not None else RenderSettings()
    ffmpeg = ffmpeg_executable(settings.ffmpeg_path)
    render = ctx.spec.render
    fps = render.fps or 30
    words = render.captions and uses_word_cues(render)
    soft = render.captions and render.caption_mode == job_pb2.CAPTION_MODE_SOFT
    cues = word_cues(ctx, narration) if words else [Cue(**cue) for cue in visuals.get("cues", [])]
    published: dict[str, str | None] = {"subtitles": None, "webvtt": None}
    if render.captions:
        ctx.path(SUBTITLE_FILE).write_text(to_srt(cues), encoding="utf-8")
        ctx.path(WEBVTT_FILE).write_text(to_webvtt(cues), encoding="utf-8")
        published = {"subtitles": SUBTITLE_FILE, "webvtt": WEBVTT_FILE}
    total = float(narration["duration"])
    graph = uses_filter_graph(ctx.spec)
    if graph and render.variable_frame_rate:
        raise ReelcastError(errors.MOTION_NEEDS_CONSTANT_FRAME_RATE)
    ass_path: str | None = None
    fonts_dir = str(FONTS_DIR)
    if words and not soft:
        ctx.path(ASS_FILE).write_text(to_ass(cues, visuals["width"], visuals["height"]), encoding="utf-8")
        published["captions_ass"] = ASS_FILE
        ass_path = str(ctx.path(ASS_FILE))
        if render.variable_frame_rate:
            changes = [moment for cue in cues for moment in caption_changes(cue)]
            frames = frames_split_at(frames, changes, fps)
    elif graph and burns_sentence_bands(render):
        # The still frames carry the captions in their pixels, which would move with the picture: the
        # graph starts from the caption-free scene images and libass draws the band over the motion.
        document = to_sentence_ass(cues, visuals["width"], visuals["height"])
        ctx.path(ASS_FILE).write_text(document, encoding="utf-8")
        published["captions_ass"] = ASS_FILE
        ass_path = str(ctx.path(ASS_FILE))
    if graph and ass_path is not None:
        fonts_dir = str(caption_fonts_dir(ctx.path(FONTS_FOLDER)))
    script_scenes = read_script(ctx)["scenes"]
    starts = [float(scene["start"]) for scene in narration["scenes"]]
    chapters = ctx.path(CHAPTERS_FILE)
    titles = [scene.get("title", "") for scene in script_scenes]
    if len(titles) != len(starts):
        titles = [""] * len(starts)
    chapters.write_text(ffmetadata(titles, starts, total), encoding="utf-8")
    partial = ctx.path(PARTIAL_VIDEO_FILE)
    # The narration with its music, ducked and at -14 LUFS (mix.py): 48 kHz, stereo under music.
    audio_path = str(await prepare_audio(ctx, narration, ffmpeg))
    subtitle_path = str(ctx.path(SUBTITLE_FILE)) if soft else None
    if graph and settings.segments > 1:
        parts = picture_parts(ctx, visuals, total)
        planned = plan_segments(parts.clips, parts.joins, parts.end, settings.segments)
        if len(planned) > 1:
            # The segments may run on other workers (ctx.run_subtask): their arguments name the work dir's
            # files relative to it, so the captions filter does too.
            relative_fonts = FONTS_FOLDER if Path(fonts_dir) == ctx.path(FONTS_FOLDER) else fonts_dir
            await render_segments(
                ctx,
                settings,
                ffmpeg,
                parts,
                planned,
                captions=[ass_filter(ASS_FILE, relative_fonts)] if ass_path else [],
                caption_files=_files_below(ctx.work_dir, [ASS_FILE, relative_fonts]) if ass_path else [],
                audio_path=audio_path,
                subtitle_path=subtitle_path,
                chapters_path=str(chapters),
                total=total,
                resolution=f"{visuals['width']}x{visuals['height']}",
            )
            return {"video": VIDEO_FILE, **published, "ffmpeg_log": str(_log_path(ctx))}
    if graph:
        scene_inputs, filter_graph = picture_graph(
            ctx, visuals, total, [ass_filter(ass_path, fonts_dir)] if ass_path else []
        )
        arguments = graph_arguments(
            ctx.spec,
            scene_inputs=scene_inputs,
            graph=filter_graph,
            audio_path=audio_path,
            subtitle_path=subtitle_path,
            output_path=str(partial),
            chapters_path=str(chapters),
            duration=total,
            preset=settings.x264_preset,
            extra_args=settings.ffmpeg_extra_args,
        )
    else:
        ctx.path(CONCAT_FILE).write_text(concat_script(frames, fps), encoding="utf-8")
        arguments = render_arguments(
            ctx.spec,
            concat_path=str(ctx.path(CONCAT_FILE)),
            audio_path=audio_path,
            subtitle_path=subtitle_path,
            output_path=str(partial),
            ass_path=ass_path,
            chapters_path=str(chapters),
            duration=total,
            preset=settings.x264_preset,
            extra_args=settings.ffmpeg_extra_args,
        )
    log_path = _log_path(ctx)
    log = FfmpegLog(
        log_path,
        job_id=ctx.job_id,
        correlation_id=ctx.correlation_id,
        resolution=f"{visuals['width']}x{visuals['height']}",
        ffmpeg_path=ffmpeg,
        arguments=arguments,
        max_bytes=settings.ffmpeg_log_max_bytes,
    )

    def on_fraction(fraction: float, seconds: float) -> None:
        ctx.report(fraction, f"Rendering video {seconds:.1f} s of {total:.1f} s")

    progress = ProgressReader(total, on_fraction)
    ctx.report(0.0, "Rendering video")
    await _encode(ctx, settings, [ffmpeg, *arguments], log, progress.line, partial, "rendering")
    partial.replace(ctx.path(VIDEO_FILE))
    ctx.report(1.0, "Rendered")
    return {"video": VIDEO_FILE, **published, "ffmpeg_log": str(log_path)}


def _log_path(ctx: StageContext, suffix: str = "") -> Path:
    return ctx.log_dir / "ffmpeg" / f"{ctx.job_id}{suffix}.log"


async def _encode(
    ctx: StageContext,
    settings: RenderSettings,
    argv: list[str],
    log: FfmpegLog,
    on_stdout_line: Callable[[str], None] | None,
    partial: Path,
    doing: str,
    subtask: Subtask | None = None,
) -> None:
    """One ffmpeg run to ``partial`` (as ``subtask`` when given: on any worker) under the job's cancel and
    the render timeout; its failures as catalogue errors (the partial file removed)."""
    log_path = log.path
    try:
        result = await run_ffmpeg(
            ctx,
            argv,
            log=log,
            on_stdout_line=on_stdout_line,
            timeout=settings.render_timeout_seconds,
            subtask=subtask,
        )
    except BaseException:
        _remove(partial)
        raise
    if result.cancelled:
        _remove(partial)
        raise ReelcastError(errors.CANCELLED)
    if result.timed_out:
        _remove(partial)
        raise ReelcastError(
            errors.RENDER_TIMEOUT,
            f"The render took longer than {settings.render_timeout_seconds:g} s.",
            stderr_snippet=log.stderr_snippet,
            log_path=str(log_path),
        )
    if result.returncode != 0:
        _remove(partial)
        raise ReelcastError(
            errors.FFMPEG_RUNTIME,
            f"FFmpeg exited with code {result.returncode} while {doing}.",
            stderr_snippet=log.stderr_snippet,
            log_path=str(log_path),
            suggested_actions=errors.FFMPEG_RUNTIME.suggested_actions,
        )


SEGMENTS_FOLDER = "segments"
SEGMENTS_CONCAT_FILE = "segments.ffconcat"


async def render_segments(
    ctx: StageContext,
    settings: RenderSettings,
    ffmpeg: str,
    parts: PictureParts,
    planned: Sequence[Segment],
    *,
    captions: Sequence[str],
    caption_files: Sequence[str],
    audio_path: str,
    subtitle_path: str | None,
    chapters_path: str,
    total: float,
    resolution: str,
) -> None:
    """The moving picture as ``planned`` segments encoded at once, then joined with the sound and the
    sidecars into ``video.mp4`` (segments.py says how). Each segment is a subtask (``ctx.run_subtask``: on
    NATS, on any free worker), its arguments relative to the work dir, with ``caption_files`` among its
    inputs. Progress is the segments' frames encoded so far, summed; each segment logs to
    ``{jobId}.segment-{n}.log``, the join to the job's own log."""
    render = ctx.spec.render
    fps = parts.fps
    folder = ctx.path(SEGMENTS_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    done = [0.0] * len(planned)
    seconds = sum(segment.frames for segment in planned) / fps

    def advanced(number: int) -> Callable[[float, float], None]:
        def on_fraction(_: float, encoded: float) -> None:
            # A segment rendered again (its worker was lost) does not move the progress back.
            done[number] = max(done[number], encoded)
            progress = sum(done)
            ctx.report(
                min(0.99, progress / seconds * 0.99), f"Rendering video {progress:.1f} s of {seconds:.1f} s"
            )

        return on_fraction

    files = [folder / f"{number:03d}.mp4" for number in range(len(planned))]
    preview = GrowingPreview(
        ctx,
        ffmpeg,
        files,
        [segment.frames / fps for segment in planned],
        audio_path=audio_path,
        audio_encoding=audio_encoding(ctx.spec),
        total=total,
    )
    # Spread over the deployment's workers, every segment is queued at once: the fair queue decides where and
    # when each runs.
    default_workers = len(planned) if ctx.subtasks_spread else os.cpu_count() or 1
    workers = asyncio.Semaphore(settings.segment_workers or default_workers)
    # With previews, the first segment encodes alone with every core (x264's threads): the first preview
    # is out sooner, at the cost of the cores it leaves idle (benchmarks.md, time to the first preview).
    # Spread over workers, the first segment has its worker's cores anyway.
    first_done = asyncio.Event()
    if not settings.previews or ctx.subtasks_spread:
        first_done.set()

    async def encode(number: int, segment: Segment) -> None:
        if number:
            await first_done.wait()
        async with workers:  # taken in timeline order: the segments start (and mostly end) in that order
            await encode_alone(number, segment)
        first_done.set()
        if settings.previews:
            await preview.segment_done(number)

    async def encode_alone(number: int, segment: Segment) -> None:
        inputs, graph = segment_graph(parts, segment, captions)
        output = files[number]
        read = list(caption_files)
        arguments = list(PROGRESS_ARGUMENTS)
        for scene_input in inputs:
            *options, path = scene_input
            relative = _in_work_dir(ctx, Path(path))
            read.append(relative)
            arguments += [*options, relative]
        arguments += ["-filter_complex", graph, "-map", "[video]", "-an"]
        arguments += _video_encoding(render, settings.x264_preset, tune=None)
        # Closed GOPs, so that no frame refers across the join; every encode starts on a keyframe.
        arguments += ["-flags", "+cgop", "-fps_mode", "cfr", "-r", str(fps)]
        written = output.relative_to(ctx.work_dir).as_posix()
        arguments += ["-frames:v", str(segment.frames), *settings.ffmpeg_extra_args, "-f", "mp4", written]
        log = _segment_log(ctx, settings, ffmpeg, arguments, resolution, f".segment-{number}")
        reader = ProgressReader(segment.frames / fps, advanced(number))
        subtask = Subtask(f"segment-{number}", (ffmpeg, *arguments), tuple(dict.fromkeys(read)), (written,))
        await _encode(
            ctx,
            settings,
            list(subtask.argv),
            log,
            reader.line,
            output,
            f"rendering segment {number}",
            subtask,
        )

    ctx.report(0.0, f"Rendering video in {len(planned)} segments")
    try:
        async with asyncio.TaskGroup() as group:
            for number, segment in enumerate(planned):
                group.create_task(encode(number, segment))
    except BaseExceptionGroup as failed:
        # The first failure (the others were cancelled because of it) as the stage's error.
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    listing = ctx.path(SEGMENTS_CONCAT_FILE)
    listing.write_text(concat_listing(files), encoding="utf-8")
    partial = ctx.path(PARTIAL_VIDEO_FILE)
    arguments = join_arguments(
        ctx.spec,
        concat_path=str(listing),
        audio_path=audio_path,
        subtitle_path=subtitle_path,
        chapters_path=chapters_path,
        output_path=str(partial),
        duration=total,
    )
    log = _segment_log(ctx, settings, ffmpeg, arguments, resolution, "")
    ctx.report(0.99, "Joining the segments")
    await _encode(ctx, settings, [ffmpeg, *arguments], log, None, partial, "joining the segments")
    partial.replace(ctx.path(VIDEO_FILE))
    for file in files:
        _remove(file)
    ctx.report(1.0, "Rendered")


def _in_work_dir(ctx: StageContext, path: Path) -> str:
    """``path`` relative to the work dir, for a subtask's arguments; a file outside it (an uploaded clip in
    the media cache) is linked into ``segments/inputs/`` first, so that it travels with the subtask."""
    if path.is_relative_to(ctx.work_dir):
        return path.relative_to(ctx.work_dir).as_posix()
    link = ctx.path(SEGMENTS_FOLDER) / "inputs" / path.name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.hardlink_to(path)
        except OSError:  # another file system
            shutil.copyfile(path, link)
    return link.relative_to(ctx.work_dir).as_posix()


def _files_below(work_dir: Path, relatives: Sequence[str]) -> list[str]:
    """The files among ``relatives`` (work-dir paths), and every file below those that are folders; paths
    outside the work dir (the installed fonts) are left out: every worker has them."""
    found: list[str] = []
    for relative in relatives:
        if Path(relative).is_absolute():
            continue
        path = work_dir / relative
        if path.is_dir():
            found += sorted(
                each.relative_to(work_dir).as_posix() for each in path.rglob("*") if each.is_file()
            )
        elif path.is_file():
            found.append(relative)
    return found


def _segment_log(
    ctx: StageContext,
    settings: RenderSettings,
    ffmpeg: str,
    arguments: Sequence[str],
    resolution: str,
    suffix: str,
) -> FfmpegLog:
    return FfmpegLog(
        _log_path(ctx, suffix),
        job_id=ctx.job_id,
        correlation_id=ctx.correlation_id,
        resolution=resolution,
        ffmpeg_path=ffmpeg,
        arguments=arguments,
        max_bytes=settings.ffmpeg_log_max_bytes,
    )


def join_arguments(
    spec: job_pb2.JobSpec,
    *,
    concat_path: str,
    audio_path: str,
    subtitle_path: str | None,
    chapters_path: str,
    output_path: str,
    duration: float,
) -> list[str]:
    """ffmpeg's arguments joining the encoded segments (copied, never re-encoded) with the sound, the soft
    subtitles and the chapters, as :func:`graph_arguments` writes them in the single render."""
    args = [*PROGRESS_ARGUMENTS, "-f", "concat", "-safe", "0", "-i", concat_path]
    args += audio_input(audio_path)
    soft = subtitle_path is not None
    if soft:
        args += ["-i", str(subtitle_path)]
    args += ["-f", "ffmetadata", "-i", chapters_path]
    args += ["-map", "0:v:0", "-map", "1:a:0"]
    if soft:
        args += ["-map", "2:s:0"]
    args += ["-c:v", "copy"]
    args += _file_arguments(spec, soft=soft, chapters_input=2 + soft)
    args += ["-t", f"{duration:.6f}", "-f", "mp4", output_path]
    return args


def picture_segments(visuals: VisualsArtifact) -> list[tuple[int, float, str]]:
    """The moving picture's segments, from the visuals' frame timeline: ``(scene, start, image)`` for each
    run of frames of one scene, in order. A scene's segment shows its caption-free scene image (its frames
    differ only by their burned captions, which libass draws instead); frames of no scene (a plugin's card,
    scene -1) keep their own image, so a stage that adds frames is rendered with motion too."""
    images = visuals["scene_images"]
    segments: list[tuple[int, float, str]] = []
    for frame in visuals["frames"]:
        scene = int(frame.get("scene", -1))
        if segments and segments[-1][0] == scene and scene >= 0:
            continue
        image = images[scene] if 0 <= scene < len(images) else frame["image"]
        segments.append((scene, float(frame["start"]), image))
    return segments


@dataclass(frozen=True)
class PictureParts:
    """A moving picture before it is joined: the timeline's clips and joins, one input (options and
    ``-i``) and one source filter chain per clip, and the transition."""

    clips: list[Clip]
    joins: list[Join]
    inputs: list[list[str]]
    sources: list[str]
    transition: job_pb2.Transition.ValueType
    fps: int
    end: int


def picture_parts(ctx: StageContext, visuals: VisualsArtifact, total: float) -> PictureParts:
    """Each segment's caption-free image with its push or pan (or held still), or its scene's uploaded
    clip, on the timeline of the narration (``motion.timeline``)."""
    spec = ctx.spec
    fps = spec.render.fps or 30
    width, height = int(visuals["width"]), int(visuals["height"])
    segments = picture_segments(visuals)
    if not segments or len(visuals["scene_images"]) < max(scene for scene, _, _ in segments) + 1:
        raise ReelcastError(errors.ARTIFACT_MISSING, "The visuals do not have one image per scene.")
    transition = transition_of(spec.plan)
    clips, joins = timeline(
        [start for _, start, _ in segments], total, fps, transition != job_pb2.TRANSITION_NONE
    )
    moving = motion_of(spec.plan) == job_pb2.MOTION_KEN_BURNS
    backgrounds = background_clip_ids(read_script(ctx)["scenes"], spec)
    inputs: list[list[str]] = []
    sources: list[str] = []
    for clip, (scene, _, image) in zip(clips, segments, strict=True):
        media_id = backgrounds[scene] if 0 <= scene < len(backgrounds) else ""
        media = ctx.media(media_id) if media_id else None
        if media is not None and media.kind == "clip":
            inputs.append(clip_input(str(media.path), clip.frames, fps))
            sources.append(clip_filter(clip.frames, width, height, fps))
            continue
        inputs.append(image_input(str(ctx.path(image)), fps))
        if moving:
            sources.append(ken_burns_filter(clip.scene, clip.frames, width, height, fps))
        else:
            sources.append(still_filter(clip.frames))
    # The frames the single render's -t keeps: the segments add up to exactly these.
    end = min(
        sum(clip.frames for clip in clips) - sum(join.frames for join in joins),
        rendered_frames(total, fps, joins),
    )
    return PictureParts(clips, joins, inputs, sources, transition, fps, end)


def picture_graph(
    ctx: StageContext,
    visuals: VisualsArtifact,
    total: float,
    captions: Sequence[str],
) -> tuple[list[list[str]], str]:
    """The scene inputs and the filter graph of a moving picture: each segment's caption-free image with its
    push or pan (or held still), or its scene's uploaded clip, joined by the plan's transition, captions on
    top."""
    parts = picture_parts(ctx, visuals, total)
    graph = video_graph(parts.clips, parts.joins, parts.sources, parts.transition, parts.fps, captions)
    return parts.inputs, graph


def segment_graph(
    parts: PictureParts, segment: Segment, captions: Sequence[str]
) -> tuple[list[list[str]], str]:
    """The inputs and filter graph of one segment: the clips it touches, joined as in the whole graph, cut
    to the segment's frames, captions drawn at the timeline's times."""
    clips, joins, origin = segment_timeline(parts.clips, parts.joins, segment)
    filters = [*segment_window(segment, origin, parts.fps), *captions, segment_rebase(parts.fps)]
    sources = [parts.sources[index] for index in segment.clips]
    graph = video_graph(clips, joins, sources, parts.transition, parts.fps, filters)
    return [parts.inputs[index] for index in segment.clips], graph


def word_cues(ctx: StageContext, narration: NarrationArtifact) -> list[Cue]:
    """The word cues of the script's narration, timed by the narration's words (or their estimate)."""
    scenes = read_script(ctx)["scenes"]
    timing = narration["scenes"]
    if len(timing) != len(scenes):
        raise ReelcastError(errors.ARTIFACT_MISSING, "The narration does not have one entry per scene.")
    return build_word_cues([scene["narration"] for scene in scenes], timing, ctx.path)


def caption_changes(cue: Cue) -> list[float]:
    """When the picture of a word cue changes: it appears, each word lights up, it goes."""
    return [cue.start, *(word["start"] for word in cue.words), cue.end]


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="render",
            title="Rendering",
            weight=20,
            order=400,
            run=run,
            settings=RenderSettings,
            description="Encodes frames and narration into an H.264/AAC MP4 with ffmpeg's concat demuxer.",
        )
    )
