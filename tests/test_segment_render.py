"""Scene-parallel rendering (``RenderSettings.segments``, plugins/builtin/segments.py) against the single
render of the same job: same duration, same frame count, a clean decode, the same streams and tags, and no
seam (SSIM at every segment boundary, one frame either side).
And a cancelled segmented render leaves no ffmpeg.

One job (640x360, four scenes, about 7 s, Ken Burns and crossfades, burned sentence captions) is voiced and
laid out once; the render stage then runs on it three times: single, 2 segments, 3 segments.
There is no ffprobe next to imageio-ffmpeg: the facts come from ffmpeg's own decode (``showinfo``, its
input dump), as in the other render tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.builtin.motion import timeline
from reelcast.plugins.builtin.segments import cut_points, plan_segments
from reelcast.plugins.host import PluginHost
from reelcast.plugins.testing import PublishedPreview, StageHarness
from tests.media import FFMPEG, input_dump, probe, video_frame_times

WIDTH, HEIGHT, FPS = 640, 360, 30
SCRIPT = [
    job_pb2.Scene(title="Hives", narration="Bees build hives."),
    job_pb2.Scene(title="Flowers", narration="They visit flowers."),
    job_pb2.Scene(title="Honey", narration="Nectar becomes honey."),
    job_pb2.Scene(title="Winter", narration="Winter is warm inside."),
]
SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(topic="Bees", language="en"),
    script=SCRIPT,
    render=job_pb2.RenderSpec(
        width=WIDTH, height=HEIGHT, fps=FPS, captions=True, caption_style=job_pb2.CAPTION_STYLE_SENTENCES
    ),
)


@dataclass
class Renders:
    harness: StageHarness
    videos: dict[int, Path]
    # The previews of a 3-segment render whose segments ran one at a time.
    previews: list[PublishedPreview]


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Renders:
    root = tmp_path_factory.mktemp("segments")
    harness = StageHarness(root / "work", root / "logs", PluginHost.load())
    for stage in ("script", "voice", "visuals"):
        harness.run(stage, SPEC)
    upstream = dict(harness.artifacts)
    videos: dict[int, Path] = {}
    for segments in (1, 2, 3):
        outcome = harness.run(
            "render", SPEC, upstream, settings={"x264_preset": "ultrafast", "segments": segments}
        )
        fractions = outcome.fractions
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        if segments > 1:
            assert any("segments" in message for _, message in outcome.progress)
            assert len(harness.path("segments.ffconcat").read_text().split("file ")) - 1 == segments
        videos[segments] = root / f"video-{segments}.mp4"
        shutil.copy(harness.path(outcome.artifacts["video"]), videos[segments])
    assert 5.0 <= probe(videos[1]).duration <= 9.0
    one_at_a_time = {"x264_preset": "ultrafast", "segments": 3, "segment_workers": 1}
    outcome = harness.run("render", SPEC, upstream, settings=one_at_a_time)
    return Renders(harness, videos, outcome.previews)


def _frame_ssim(first: Path, second: Path, number: int) -> float:
    graph = f"[0:v]select=eq(n\\,{number})[a];[1:v]select=eq(n\\,{number})[b];[a][b]ssim"
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(first), "-i", str(second), "-lavfi", graph, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    found = re.findall(r"All:([\d.]+)", result.stderr)
    assert found, result.stderr[-2000:]
    return float(found[-1])


def test_the_plan_cuts_only_where_no_transition_runs_and_covers_every_frame() -> None:
    clips, joins = timeline([0.0, 1.6, 3.5, 5.2], 7.0, FPS, transitions=True)
    end = 7 * FPS
    for count in (2, 3, 4):
        segments = plan_segments(clips, joins, end, count)
        assert len(segments) == count
        assert sum(segment.frames for segment in segments) == end
        assert [s.first for s in segments[1:]] == [s.end for s in segments[:-1]]
        for segment in segments[1:]:
            assert segment.first in cut_points(joins, end)
            assert all(
                not (j.offset <= segment.first - 1 < j.offset + j.frames - 1) for j in joins if j.frames
            )
    # More segments than allowed cuts: fewer segments, never a cut inside a transition.
    assert len(plan_segments(clips, joins, end, 9)) == 4


@pytest.mark.parametrize("segments", [2, 3])
def test_a_segmented_render_equals_the_single_render(renders: Renders, segments: int) -> None:
    single, parallel = renders.videos[1], renders.videos[segments]
    frames = video_frame_times(single)
    assert len(video_frame_times(parallel)) == len(frames)
    assert probe(parallel).duration == pytest.approx(probe(single).duration, abs=0.03)
    decode = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(parallel), "-f", "null", "-"], capture_output=True
    )
    assert decode.returncode == 0 and decode.stderr == b""

    # Same streams, tags and chapters: the input dump without the file name, bitrates and sizes.
    def streams(path: Path) -> list[str]:
        dump = input_dump(path)
        lines = [
            line
            for line in dump.splitlines()
            if "Stream #" in line or "Chapter #" in line or "language" in line
        ]
        return [re.sub(r"\d+ kb/s|\(\w+ / 0x[0-9A-F]+\)", "", line) for line in lines]

    assert len(streams(single)) >= 6  # video, audio, four chapters
    assert streams(parallel) == streams(single)
    assert "bt709" in input_dump(parallel)


@pytest.mark.parametrize("segments", [2, 3])
def test_no_seam_at_any_segment_boundary(renders: Renders, segments: int) -> None:
    boundaries = _boundaries_for(renders, segments)
    assert len(boundaries) == segments - 1
    for boundary in boundaries:
        for number in (boundary - 1, boundary, boundary + 1):
            assert _frame_ssim(renders.videos[1], renders.videos[segments], number) >= 0.99, (
                boundary,
                number,
            )


def _boundaries_for(renders: Renders, segments: int) -> list[int]:
    narration = json.loads(renders.harness.path("voice.json").read_text(encoding="utf-8"))
    clips, joins = timeline([s["start"] for s in narration["scenes"]], narration["duration"], FPS, True)
    end = len(video_frame_times(renders.videos[1]))
    return [segment.first for segment in plan_segments(clips, joins, end, segments)[1:]]


def _ffmpeg_children() -> list[int]:
    """ffmpeg processes whose parent is this test process (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == os.getpid() and b"ffmpeg" in command:
            found.append(int(entry.name))
    return found


def test_cancelling_a_segmented_render_kills_every_segments_ffmpeg(renders: Renders) -> None:
    harness = renders.harness
    upstream = dict(harness.artifacts)

    async def scenario() -> tuple[int, list[int]]:
        task = asyncio.ensure_future(
            harness.run_async("render", SPEC, upstream, settings={"x264_preset": "veryslow", "segments": 3})
        )
        running: list[int] = []
        for _ in range(600):
            await asyncio.sleep(0.05)
            running = _ffmpeg_children()
            if len(running) >= 3:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        return len(running), _ffmpeg_children()

    seen, left = asyncio.run(scenario())
    assert seen >= 3
    assert left == []
    assert not harness.path("video.mp4.part").exists()


def test_a_cancelled_job_stops_every_segment_with_the_cancel_error(renders: Renders) -> None:
    harness = renders.harness
    upstream = dict(harness.artifacts)

    async def scenario() -> list[int]:
        task = asyncio.ensure_future(
            harness.run_async("render", SPEC, upstream, settings={"x264_preset": "veryslow", "segments": 2})
        )
        for _ in range(600):
            await asyncio.sleep(0.05)
            if len(_ffmpeg_children()) >= 2:
                break
        assert harness.cancel_event is not None
        harness.cancel_event.set()
        with pytest.raises(ReelcastError) as raised:
            await asyncio.wait_for(task, 30)
        assert raised.value.code == errors.CANCELLED.code
        return _ffmpeg_children()

    assert asyncio.run(scenario()) == []


def test_a_failing_segment_fails_the_stage_with_its_log(renders: Renders) -> None:
    harness = renders.harness
    with pytest.raises(ReelcastError) as raised:
        harness.run(
            "render",
            SPEC,
            dict(harness.artifacts),
            settings={"segments": 2, "ffmpeg_extra_args": "-no_such_option 1"},
        )
    assert raised.value.code == errors.FFMPEG_RUNTIME.code
    assert raised.value.log_path.endswith(".segment-0.log") or raised.value.log_path.endswith(
        ".segment-1.log"
    )
    assert "segment" in raised.value.message
    assert _ffmpeg_children() == []


def test_hard_cuts_and_soft_subtitles_segment_like_the_single_render(tmp_path: Path) -> None:
    """Cuts at scene changes (the concat filter keeps one frame more under ``-t`` than xfade does) and a
    soft subtitle track through the join; smaller, two segments."""
    spec = job_pb2.JobSpec()
    spec.CopyFrom(SPEC)
    spec.plan.transition = job_pb2.TRANSITION_NONE
    spec.render.width, spec.render.height = 320, 180
    spec.render.caption_mode = job_pb2.CAPTION_MODE_SOFT
    harness = StageHarness(tmp_path / "work", tmp_path / "logs", PluginHost.load())
    for stage in ("script", "voice", "visuals"):
        harness.run(stage, spec)
    upstream = dict(harness.artifacts)
    videos = []
    for segments in (1, 2):
        harness.run("render", spec, upstream, settings={"x264_preset": "ultrafast", "segments": segments})
        videos.append(shutil.copy(harness.path("video.mp4"), tmp_path / f"video-{segments}.mp4"))
    single, parallel = (Path(video) for video in videos)
    assert len(video_frame_times(parallel)) == len(video_frame_times(single))
    assert probe(parallel).subtitle_codecs == probe(single).subtitle_codecs == ["mov_text"]
    narration = json.loads(harness.path("voice.json").read_text(encoding="utf-8"))
    clips, joins = timeline([s["start"] for s in narration["scenes"]], narration["duration"], FPS, False)
    (boundary,) = [s.first for s in plan_segments(clips, joins, len(video_frame_times(single)), 2)[1:]]
    assert boundary in [round(scene["start"] * FPS) for scene in narration["scenes"]]
    for number in (boundary - 1, boundary, boundary + 1):
        assert _frame_ssim(single, parallel, number) >= 0.99


def test_a_segmented_render_publishes_each_finished_run_from_the_start_as_a_playable_preview(
    renders: Renders,
) -> None:
    """Three segments one at a time: a preview after the first and after the second (the third is the
    video itself), each an MP4 with its sound that decodes cleanly and shows the single render's frames."""
    previews = renders.previews
    assert [preview.relative for preview in previews] == [
        "previews/preview-1.mp4",
        "previews/preview-2.mp4",
    ]
    single = renders.videos[1]
    total = probe(single).duration
    durations = [preview.duration_seconds for preview in previews]
    assert 0 < durations[0] < durations[1] < total
    for preview in previews:
        assert preview.total_seconds == pytest.approx(total, abs=0.05)
        facts = probe(preview.copy)
        assert (facts.width, facts.height, facts.video_codec, facts.audio_codec) == (
            WIDTH,
            HEIGHT,
            "h264",
            "aac",
        )
        assert facts.duration == pytest.approx(preview.duration_seconds, abs=0.05)
        frames = len(video_frame_times(preview.copy))
        assert frames == round(preview.duration_seconds * FPS)
        decode = subprocess.run(
            [FFMPEG, "-v", "error", "-i", str(preview.copy), "-f", "null", "-"], capture_output=True
        )
        assert decode.returncode == 0 and decode.stderr == b""
        for number in (0, frames - 1):
            assert _frame_ssim(single, preview.copy, number) >= 0.99
    # The latest preview stays after the render, for a player still reading it until the job completes.
    assert renders.harness.path("previews/preview-2.mp4").is_file()
