"""The built-in postprocess stage: verify the MP4 by decoding it fully, write a thumbnail, publish the output.

Verification decodes every video and audio packet to ffmpeg's null muxer and requires exit code 0; the
duration comes from the container as ffmpeg reports it. The thumbnail (the poster frame) is a JPEG of the
midpoint of the first content scene (``poster_scene``: not the opening hook or title card), taken from the
rendered video itself (the frame on screen at that moment, away from any transition).

Artifacts: ``thumbnail`` -> ``thumbnail.jpg`` and ``output`` (see ``OUTPUT_ARTIFACT``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reelcast.jobs import errors
from reelcast.plugins import OUTPUT_ARTIFACT, ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import read_script
from reelcast.plugins.builtin.ffmpeg import ProgressReader, ffmpeg_executable, parse_duration, run_ffmpeg
from reelcast.plugins.builtin.voice import load_narration

THUMBNAIL_FILE = "thumbnail.jpg"
_SNIPPET_CHARS = 16 * 1024


@dataclass(frozen=True)
class PostprocessSettings:
    """The postprocess stage's knobs (``REELCAST_PLUGIN_POSTPROCESS_<FIELD>``, or older names in ``env``)."""

    # An explicit ffmpeg; by default the one bundled with imageio-ffmpeg (the render stage's has the same).
    ffmpeg_path: str | None = field(default=None, metadata={"env": "REELCAST_FFMPEG"})


async def run(ctx: StageContext) -> dict[str, Any]:
    video_relative = ctx.artifacts.get("video")
    if not isinstance(video_relative, str) or not ctx.path(video_relative).is_file():
        raise ReelcastError(errors.ARTIFACT_MISSING, "No video artifact from the render stage.")
    video = ctx.path(video_relative)
    narration = load_narration(ctx)
    settings: PostprocessSettings = ctx.settings if ctx.settings is not None else PostprocessSettings()
    ffmpeg = ffmpeg_executable(settings.ffmpeg_path)
    log_path = str(ctx.artifacts.get("ffmpeg_log") or "")
    expected = float(narration["duration"])
    stderr: list[str] = []

    def on_fraction(fraction: float, seconds: float) -> None:
        ctx.report(0.8 * fraction, f"Verifying video {seconds:.1f} s of {expected:.1f} s")

    reader = ProgressReader(expected, on_fraction)
    ctx.report(0.0, "Postprocessing: verifying the video")
    verify = [
        ffmpeg, "-hide_banner", "-nostats", "-progress", "pipe:1", "-i", str(video),
        "-map", "0:v", "-map", "0:a", "-f", "null", "-",
    ]  # fmt: skip
    result = await run_ffmpeg(ctx, verify, on_stdout_line=reader.line, on_stderr_line=stderr.append)
    ctx.raise_if_cancelled()
    stderr_text = "\n".join(stderr)
    duration = parse_duration(stderr_text)
    if result.returncode != 0 or duration is None:
        raise ReelcastError(
            errors.OUTPUT_INVALID,
            f"Decoding the rendered video failed (exit code {result.returncode}).",
            stderr_snippet=stderr_text[-_SNIPPET_CHARS:],
            log_path=log_path,
        )
    ctx.report(0.85, "Writing thumbnail")
    scenes = narration.get("scenes") or []
    poster = scenes[poster_scene(ctx, len(scenes))] if scenes else {"start": 0.0, "duration": 0.0}
    moment = float(poster["start"]) + float(poster["duration"]) / 2
    thumbnail = ctx.path(THUMBNAIL_FILE)
    stderr.clear()
    # Not ``-ss``: a seek drops every frame that starts before the moment, and at a variable frame rate the
    # frame on screen then began seconds earlier (the seek found the next scene's frame, or none at all).
    # The fps filter repeats each frame for as long as it shows, so the first one kept is the one on screen.
    fps = ctx.spec.render.fps or 30
    snapshot = [
        ffmpeg, "-hide_banner", "-nostats", "-y", "-i", str(video), "-map", "0:v:0",
        "-vf", f"fps={fps},trim=start={moment:.3f}", "-frames:v", "1", "-q:v", "3", "-f", "image2",
        str(thumbnail),
    ]  # fmt: skip
    result = await run_ffmpeg(ctx, snapshot, on_stderr_line=stderr.append)
    ctx.raise_if_cancelled()
    if result.returncode != 0 or not thumbnail.is_file():
        raise ReelcastError(
            errors.OUTPUT_INVALID,
            "The thumbnail could not be taken from the rendered video.",
            stderr_snippet="\n".join(stderr)[-_SNIPPET_CHARS:],
            log_path=log_path,
        )
    subtitles = ctx.artifacts.get("subtitles")
    webvtt = ctx.artifacts.get("webvtt")
    output = {
        "video_path": str(video),
        "size_bytes": video.stat().st_size,
        "duration_seconds": duration,
        "thumbnail_path": str(thumbnail),
        "subtitle_path": str(ctx.path(subtitles)) if isinstance(subtitles, str) else "",
        "webvtt_path": str(ctx.path(webvtt)) if isinstance(webvtt, str) else "",
    }
    ctx.report(1.0, "Postprocessing done")
    return {"thumbnail": THUMBNAIL_FILE, OUTPUT_ARTIFACT: output}


def poster_scene(ctx: StageContext, count: int) -> int:
    """The scene the poster frame comes from: the first one after the opening scene (the hook or title
    card) that is not hinted as a title, so the poster shows content (its pictogram, its point); the only
    scene of a one-scene video."""
    if count < 2:
        return 0
    try:
        hints = [scene.get("visual_hint", "") for scene in read_script(ctx)["scenes"]]
    except ReelcastError:
        hints = []
    if len(hints) != count:
        return 1
    return next((index for index in range(1, count) if hints[index] != "title"), 1)


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="postprocess",
            title="Postprocessing",
            weight=10,
            order=500,
            run=run,
            settings=PostprocessSettings,
            description="Verifies the MP4 by decoding it, writes a JPEG thumbnail and publishes the output.",
        )
    )
