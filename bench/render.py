# ruff: noqa: B023 - each lambda is called at once by timed(), inside its loop iteration
"""Times the same job rendered three ways, in one run, at 720p and 1080p (its section of docs/benchmarks.md).

The video is the default look: a Ken Burns push or pan per scene, crossfades between scenes, and sentence
captions drawn over the moving picture, with the narration as the sound (the music and the mix are the
mix stage's; the narration WAV stands in for them here, identically for all three).

1. reelcast: the built-in render stage.
2. moviepy: the same motion (a zoom or pan per scene, computed per frame), crossfades of the same length
   centred on the same scene changes, and the same caption bands (the visuals stage's own band, as a
   transparent overlay per cue), written with libx264 (bench-only dependency, ``pip install -e '.[bench]'``).
3. bare ffmpeg: the exact command the render stage ran (read back from its ffmpeg log), run directly, without
   reelcast around it: the lower bound on the same graph.

The scenes come from the real script, voice and visuals stages, so every renderer gets identical inputs.
Run alone: ``python -m bench.render [--seconds 30] [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from bench.harness import pyplot
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins import StageContext
from reelcast.plugins.builtin import motion, render, script, visuals, voice
from reelcast.plugins.stage import PreviewPublisher
from reelcast.server.config import Settings

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
KEY_POINTS = [
    "Worker bees collect nectar from flowers and carry it home in their crops.",
    "Inside the hive the nectar passes from bee to bee and slowly turns into honey.",
    "The bees fan it with their wings until it is thick, then seal each cell with wax.",
    "A strong colony can store more than twenty kilograms of honey in one summer.",
]
RENDERERS = ("reelcast render stage", "bare ffmpeg command", "moviepy pipeline")


def _spec(seconds: float, width: int, height: int) -> job_pb2.JobSpec:
    # The writer fills the target only with the points it is given: fewer points for a short smoke run.
    points = KEY_POINTS if seconds >= 20 else KEY_POINTS[:1]
    return with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(
                topic="How bees make honey",
                audience="curious adults",
                key_points=points,
            ),
            plan=job_pb2.Plan(target_duration_seconds=seconds),
            # Sentence captions: every renderer draws the same bands over the moving picture.
            render=job_pb2.RenderSpec(
                width=width, height=height, captions=True, caption_style=job_pb2.CAPTION_STYLE_SENTENCES
            ),
        )
    )


def _context(
    work_dir: Path,
    spec: job_pb2.JobSpec,
    settings: Settings,
    artifacts: dict[str, Any],
    stage_settings: Any = None,
    preview: PreviewPublisher | None = None,
    report: Callable[[float, str], None] | None = None,
) -> StageContext:
    return StageContext(
        job_id=f"bench-{work_dir.name}",
        correlation_id="bench",
        stage_name="bench",
        spec=spec,
        work_dir=work_dir,
        log_dir=settings.logs_dir,
        settings=stage_settings,
        artifacts=artifacts,
        log=logging.LoggerAdapter(logging.getLogger("bench"), {}),
        cancel_event=asyncio.Event(),
        _report=report or (lambda _fraction, _message: None),
        _preview=preview,
    )


async def prepare(work_dir: Path, spec: job_pb2.JobSpec, settings: Settings) -> dict[str, Any]:
    """Runs the script, voice and visuals stages: the inputs every renderer shares."""
    artifacts: dict[str, Any] = {}
    for stage in (script.run, voice.run, visuals.run):
        artifacts.update(stage(_context(work_dir, spec, settings, artifacts)))
    return artifacts


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def reelcast_render(
    work_dir: Path, spec: job_pb2.JobSpec, settings: Settings, artifacts: dict[str, Any]
) -> Path:
    """Runs the render stage; returns its ffmpeg log."""

    async def go() -> dict[str, Any]:
        render_settings = render.RenderSettings(**settings.stage_settings.get("render", {}))
        return await render.run(_context(work_dir, spec, settings, dict(artifacts), render_settings))

    return Path(asyncio.run(go())["ffmpeg_log"])


def logged_command(log: Path) -> list[str]:
    """The ffmpeg arguments the render stage ran, from its log's ``Command:`` line."""
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("Command: "):
            return shlex.split(line.removeprefix("Command: "))
    raise RuntimeError(f"no Command line in {log}")


def bare_ffmpeg(arguments: list[str], output: Path) -> None:
    """The render stage's exact command, to another output file."""
    args = [*arguments[:-1], str(output)]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )


def _caption_overlays(work_dir: Path, width: int, height: int) -> list[tuple[str, float, float]]:
    """Each sentence cue's band as a transparent PNG (the visuals stage's band on a clear frame)."""
    from PIL import Image, ImageChops

    document = json.loads((work_dir / "visuals.json").read_text())
    clear = Image.new("RGB", (width, height), (0, 0, 0))
    white = Image.new("RGB", (width, height), (255, 255, 255))
    overlays = []
    for number, cue in enumerate(document.get("cues", [])):
        # The band over black and over white gives the colour and the alpha of every pixel.
        on_black = visuals.draw_cue_band(clear, cue["text"]).convert("RGB")
        on_white = visuals.draw_cue_band(white, cue["text"]).convert("RGB")
        alpha = ImageChops.invert(ImageChops.subtract(on_white, on_black)).convert("L")
        band = on_black.copy()
        band.putalpha(alpha)
        path = work_dir / f"moviepy-cue-{number:03d}.png"
        band.save(path)
        overlays.append((str(path), float(cue["start"]), float(cue["end"])))
    return overlays


def moviepy_pipeline(work_dir: Path, spec: job_pb2.JobSpec, preset: str, output: Path) -> None:
    from moviepy import AudioFileClip, CompositeVideoClip, ImageClip, vfx

    document = json.loads((work_dir / "visuals.json").read_text())
    narration = json.loads((work_dir / "voice.json").read_text())
    width, height = int(document["width"]), int(document["height"])
    fps = spec.render.fps or 30
    total = float(narration["duration"])
    starts = [float(scene["start"]) for scene in narration["scenes"]]
    clips, joins = motion.timeline(starts, total, fps, transitions=True)
    layers = []
    for clip, image in zip(clips, document["scene_images"], strict=True):
        seconds = clip.frames / fps
        move = clip.scene % 4
        span = motion.ZOOM_SPAN

        def zoom(t: float, move: int = move, seconds: float = seconds) -> float:
            progress = min(1.0, t / seconds)
            return 1 + span * progress if move == 0 else 1 + span - span * progress if move == 2 else 1 + span

        def left(t: float, move: int = move, seconds: float = seconds) -> float:
            progress = min(1.0, t / seconds)
            room = width * span
            if move == 1:
                return -room * progress
            if move == 3:
                return -room * (1 - progress)
            return -(zoom(t) - 1) * width / 2

        def top(t: float) -> float:
            return -(zoom(t) - 1) * height / 2

        still = (
            ImageClip(str(work_dir / image))
            .with_duration(seconds)
            .resized(zoom)
            .with_position(lambda t, left=left, top=top: (left(t), top(t)))
        )
        layer = CompositeVideoClip([still], size=(width, height)).with_start(clip.first / fps)
        join = next((j for j in joins if j.index == clip.scene), None)
        if join is not None and join.frames:
            layer = layer.with_effects([vfx.CrossFadeIn(join.frames / fps)])
        layers.append(layer)
    for path, start, end in _caption_overlays(work_dir, width, height):
        layers.append(ImageClip(path).with_start(start).with_duration(end - start))
    video = (
        CompositeVideoClip(layers, size=(width, height))
        .with_duration(total)
        .with_audio(AudioFileClip(str(work_dir / narration["audio"])))
    )
    video.write_videofile(
        str(output),
        fps=fps,
        codec="libx264",
        audio_codec="aac",
        preset=preset,
        ffmpeg_params=["-pix_fmt", "yuv420p", "-crf", "23"],
        logger=None,
    )
    video.close()


def run(quick: bool = False, seconds: float = 30.0, preset: str = "veryfast") -> dict[str, Any]:
    """Renders the same video three ways at each size; ``quick`` renders 3 s at 320x180 only."""
    seconds = 3.0 if quick else seconds
    sizes = {"180p": (320, 180)} if quick else SIZES
    results: dict[str, float] = {}
    narration_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="reelcast-bench-") as temporary:
        base = Path(temporary)
        settings = Settings(data_dir=base / "data", x264_preset=preset)
        for name, (width, height) in sizes.items():
            work_dir = base / name
            work_dir.mkdir()
            spec = _spec(seconds, width, height)
            artifacts = asyncio.run(prepare(work_dir, spec, settings))
            narration_seconds[name] = json.loads((work_dir / "voice.json").read_text())["duration"]
            log: list[Path] = []
            results[f"reelcast render stage, {name}"] = timed(
                lambda: log.append(reelcast_render(work_dir, spec, settings, artifacts))
            )
            arguments = logged_command(log[0])
            results[f"bare ffmpeg command, {name}"] = timed(
                lambda: bare_ffmpeg(arguments, work_dir / "bare.mp4")
            )
            results[f"moviepy pipeline, {name}"] = timed(
                lambda: moviepy_pipeline(work_dir, spec, preset, work_dir / "moviepy.mp4")
            )
        scenes = len(json.loads((base / next(iter(sizes)) / "visuals.json").read_text())["scene_images"])
    return {
        "preset": preset,
        "sizes": list(sizes),
        "narration_seconds": narration_seconds,
        "scenes": scenes,
        "ffmpeg": f"imageio-ffmpeg {imageio_ffmpeg.__version__}",
        "seconds": results,
    }


def _ratios(results: dict[str, Any], name: str) -> tuple[float, float]:
    """(this ÷ bare ffmpeg, moviepy ÷ this) at the same size."""
    times = results["seconds"]
    size = name.rsplit(", ", 1)[1]
    return times[name] / times[f"bare ffmpeg command, {size}"], times[f"moviepy pipeline, {size}"] / times[
        name
    ]


def realtime_factor(results: dict[str, Any], name: str) -> float:
    """Seconds of video rendered per second of wall time."""
    size = name.rsplit(", ", 1)[1]
    return float(results["narration_seconds"][size]) / float(results["seconds"][name])


def summary(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for size in results["sizes"]:
        vs_bare, vs_moviepy = _ratios(results, f"reelcast render stage, {size}")
        out[f"{size} vs bare"] = vs_bare
        out[f"{size} moviepy / reelcast"] = vs_moviepy
        out[f"{size} real-time factor"] = realtime_factor(results, f"reelcast render stage, {size}")
    return out


def section(results: dict[str, Any], plot_path: str) -> str:
    lengths = ", ".join(f"{size} {s:.2f} s" for size, s in results["narration_seconds"].items())
    lines = [
        "## Render",
        "",
        "The same job rendered three ways, one after the other in this run, at each size: reelcast's render "
        "stage, a moviepy pipeline doing the same work, and the exact ffmpeg command the render stage ran, "
        "run bare (the lower bound on the same filter graph). The picture is the default look: a Ken Burns "
        "push or pan per scene (zoompan on the upscaled still), crossfades centred on the scene changes, "
        "and sentence captions in their band over the moving picture; the sound is the narration WAV "
        "(the music and the loudness mix are another stage's). All three get the same scene images and "
        f"narration from the built-in script, voice and visuals stages: {results['scenes']} scenes, "
        f"narration {lengths}, 30 fps, libx264 preset `{results['preset']}`, AAC; ffmpeg from "
        f"{results['ffmpeg']}.",
        "",
        "| renderer | wall time (s) | real-time factor | ÷ bare ffmpeg (target ≤ 1.15) "
        "| moviepy ÷ this (target ≥ 5) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds in results["seconds"].items():
        vs_bare, vs_moviepy = _ratios(results, name)
        factor = realtime_factor(results, name)
        lines.append(f"| {name} | {seconds:.2f} | {factor:.2f} × | {vs_bare:.2f} | {vs_moviepy:.2f} |")
    lines += [
        "",
        "moviepy computes every frame in Python (NumPy and Pillow: a resize per frame for the motion, a "
        "composite for each crossfade and caption) and pipes raw frames to ffmpeg; reelcast hands the "
        "whole graph to one ffmpeg process, so its cost is the bare command's plus the stage's own "
        "work (cue layout, the ASS file, progress parsing).",
        "",
        f"![Render]({plot_path})",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    times = results["seconds"]
    sizes = results["sizes"]
    colors = ("#d62728", "#1f77b4", "#7f7f7f")
    figure, axes = plt.subplots(figsize=(7, 3.5))
    width = 0.25
    for index, (renderer, color) in enumerate(zip(RENDERERS, colors, strict=True)):
        values = [times[f"{renderer}, {size}"] for size in sizes]
        axes.bar(
            [m + (index - 1) * width for m in range(len(sizes))], values, width, label=renderer, color=color
        )
    axes.set_xticks(range(len(sizes)), list(sizes))
    axes.set_ylabel("wall time (s)")
    longest = max(results["narration_seconds"].values())
    axes.set_title(f"Rendering {longest:.0f} s with motion, crossfades and captions")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--quick", action="store_true", help="smoke scale: 3 s of video at 320x180")
    options = parser.parse_args()
    results = run(options.quick, options.seconds, options.preset)
    print(json.dumps({"summary": summary(results), **results}, indent=2))


if __name__ == "__main__":
    main()
