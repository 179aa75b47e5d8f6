# ruff: noqa: B023 - each lambda is called at once by timed(), inside its loop iteration
"""Times the same 30 s of 1080p scenes rendered three ways, in one run, and writes docs/benchmarks.md.

1. reelcast: the built-in render stage (concat demuxer), constant and variable frame rate, with captions
   burned in by splitting the concat entries at caption boundaries.
2. moviepy: ImageClips with the same durations, concatenated and written with libx264 (bench-only
   dependency, ``pip install -e '.[bench]'``).
3. bare ffmpeg: the same concat command typed by hand, without reelcast around it.

The scenes come from the real script, voice and visuals stages, so every renderer gets identical inputs.
Run: ``.venv/bin/python bench/render.py [--seconds 30] [--output docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import StageContext
from reelcast.plugins.builtin import render, script, visuals, voice
from reelcast.server.config import Settings
from reelcast.server.validation import with_defaults

ROOT = Path(__file__).resolve().parents[1]


def _spec(seconds: float, vfr: bool) -> job_pb2.JobSpec:
    return with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="How bees make honey", audience="curious adults"),
            plan=job_pb2.Plan(target_duration_seconds=seconds),
            render=job_pb2.RenderSpec(width=1920, height=1080, captions=True, variable_frame_rate=vfr),
        )
    )


def _context(
    work_dir: Path, spec: job_pb2.JobSpec, settings: Settings, artifacts: dict[str, Any]
) -> StageContext:
    return StageContext(
        job_id=f"bench-{work_dir.name}",
        correlation_id="bench",
        stage_name="bench",
        spec=spec,
        work_dir=work_dir,
        settings=settings,
        artifacts=artifacts,
        log=logging.LoggerAdapter(logging.getLogger("bench"), {}),
        cancel_event=asyncio.Event(),
        _report=lambda _fraction, _message: None,
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


def bare_ffmpeg(work_dir: Path, spec: job_pb2.JobSpec, preset: str, output: Path) -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    frames = json.loads((work_dir / "visuals.json").read_text())["frames"]
    (work_dir / "bare.ffconcat").write_text(render.concat_script(frames))
    narration = json.loads((work_dir / "voice.json").read_text())
    args = render.render_arguments(
        spec,
        concat_path=str(work_dir / "bare.ffconcat"),
        audio_path=str(work_dir / narration["audio"]),
        subtitle_path=None,
        output_path=str(output),
        duration=narration["duration"],
        preset=preset,
        extra_args=(),
    )
    subprocess.run([ffmpeg, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def moviepy_pipeline(work_dir: Path, spec: job_pb2.JobSpec, preset: str, output: Path) -> None:
    from moviepy import AudioFileClip, ImageClip, concatenate_videoclips

    frames = json.loads((work_dir / "visuals.json").read_text())["frames"]
    narration = json.loads((work_dir / "voice.json").read_text())
    clips = [ImageClip(str(work_dir / f["image"])).with_duration(f["duration"]) for f in frames]
    video = concatenate_videoclips(clips).with_audio(AudioFileClip(str(work_dir / narration["audio"])))
    video.write_videofile(
        str(output),
        fps=spec.render.fps,
        codec="libx264",
        audio_codec="aac",
        preset=preset,
        ffmpeg_params=["-pix_fmt", "yuv420p", "-tune", "stillimage", "-crf", "23"],
        logger=None,
    )
    video.close()


def reelcast_render(
    work_dir: Path, spec: job_pb2.JobSpec, settings: Settings, artifacts: dict[str, Any]
) -> None:
    async def go() -> None:
        await render.run(_context(work_dir, spec, settings, dict(artifacts)))

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    options = parser.parse_args()
    results: dict[str, float] = {}
    narration_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="reelcast-bench-") as temporary:
        base = Path(temporary)
        settings = Settings(data_dir=base / "data", x264_preset=options.preset)
        for vfr in (False, True):
            mode = "VFR" if vfr else "CFR 30 fps"
            work_dir = base / ("vfr" if vfr else "cfr")
            work_dir.mkdir()
            spec = _spec(options.seconds, vfr)
            artifacts = asyncio.run(prepare(work_dir, spec, settings))
            narration_seconds = json.loads((work_dir / "voice.json").read_text())["duration"]
            results[f"reelcast render stage, {mode}"] = timed(
                lambda: reelcast_render(work_dir, spec, settings, artifacts)
            )
            results[f"bare ffmpeg concat command, {mode}"] = timed(
                lambda: bare_ffmpeg(work_dir, spec, options.preset, work_dir / "bare.mp4")
            )
            results[f"moviepy pipeline, {mode}"] = timed(
                lambda: moviepy_pipeline(work_dir, spec, options.preset, work_dir / "moviepy.mp4")
            )
        frames = len(json.loads((base / "cfr" / "visuals.json").read_text())["frames"])
    write_report(options, results, narration_seconds, frames)
    shutil.rmtree(base, ignore_errors=True)


def write_report(
    options: argparse.Namespace, results: dict[str, float], narration: float, frames: int
) -> None:
    lines = [
        "# Render benchmark",
        "",
        "Generated by `bench/render.py` (`.venv/bin/python bench/render.py`); every number below comes",
        "from one run on one machine. All three renderers get the same inputs: the scene images (one per",
        "caption cue, captions burned in) and the narration WAV from the built-in script, voice and",
        "visuals stages.",
        "",
        f"- Video: 1920x1080, {narration:.2f} s of narration, {frames} concat entries, libx264 preset "
        f"`{options.preset}`, AAC.",
        f"- Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, ffmpeg from imageio-ffmpeg {imageio_ffmpeg.__version__}.",
        "",
        "| Renderer | Wall time (s) | vs. bare ffmpeg | moviepy / this |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, seconds in results.items():
        mode = name.rsplit(", ", 1)[1]
        bare = results[f"bare ffmpeg concat command, {mode}"]
        moviepy = results[f"moviepy pipeline, {mode}"]
        lines.append(f"| {name} | {seconds:.2f} | {seconds / bare:.2f}x | {moviepy / seconds:.2f}x |")
    lines += [
        "",
        "`vs. bare ffmpeg` is the overhead of reelcast's stage (progress parsing, logging, checks) over",
        "the same command; `moviepy / this` is how many times faster than the moviepy pipeline a renderer",
        "is. moviepy has no variable-frame-rate output, so its VFR row encodes the same constant 30 fps",
        "video. At constant frame rate all three spend their time in libx264, so they are close; the",
        "concat demuxer's gain is the VFR mode, where only one frame per image is encoded.",
        "",
    ]
    options.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
