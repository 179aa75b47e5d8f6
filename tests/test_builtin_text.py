"""Hostile text through every built-in stage: quotes, colons, percent signs, backslashes, newlines, emoji
and right-to-left text render, and none of it ever reaches ffmpeg's command line. That emoji, Hebrew and
Arabic are drawn as real glyphs rather than placeholder boxes is shown in test_builtin_glyphs.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins.builtin.captions import parse_srt
from reelcast.server.config import Settings
from tests.media import audio_rms, decode_exit_code, probe, run_job, wav_seconds

HOSTILE = (
    "It's \"quoted\" and 'single': 100% sure; C:\\path\\to\\file, a\\nb, {braces} [x] $HOME `id` & | > <",
    "Line one\nline two: with a colon, and 50% off — %{pts} %d %s",
    "Emoji 🎬🐝✨ and right to left: שלום עולם مرحبا بالعالم, then English again.",
    "Filter syntax drawtext=text='x':fontsize=99,subtitles=evil.srt; -vf -loop 1 --> arrow",
)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        x264_preset="ultrafast",
    )


def _assert_no_text_in_command(run_dir: Settings, job_id: str, texts: list[str]) -> None:
    log = (run_dir.ffmpeg_logs_dir / f"{job_id}.log").read_text(encoding="utf-8")
    command = next(line for line in log.splitlines() if line.startswith("Command: "))
    for text in texts:
        for fragment in (part for part in text.split() if len(part) > 3):
            assert fragment not in command, fragment


def _new_colour_pixels(image: Path, under: Path) -> int:
    """Bright, saturated pixels of the bottom third of ``image`` that ``under`` does not have there:
    colour emoji in the caption band (white text and the darkened gradient are neither)."""

    def bottom(path: Path) -> bytes:
        with Image.open(path) as frame:
            width, height = frame.size
            data: bytes = frame.convert("RGB").crop((0, height * 2 // 3, width, height)).tobytes()
            return data

    def coloured(data: bytes, at: int) -> bool:
        pixel = data[at : at + 3]
        return max(pixel) > 180 and max(pixel) - min(pixel) > 120

    drawn, scene = bottom(image), bottom(under)
    return sum(1 for at in range(0, len(drawn), 3) if coloured(drawn, at) and not coloured(scene, at))


def _assert_emoji_cue_is_burned_in_colour(work_dir: Path) -> None:
    visuals = json.loads((work_dir / "visuals.json").read_text(encoding="utf-8"))
    cue = next(cue for cue in visuals["cues"] if "🐝" in cue["text"])
    frame = next(frame for frame in visuals["frames"] if frame["start"] == cue["start"])
    scene_image = work_dir / visuals["scene_images"][cue["scene"]]
    assert _new_colour_pixels(work_dir / frame["image"], scene_image) > 10


@pytest.mark.parametrize(
    ("mode", "variable_frame_rate", "style"),
    [
        (job_pb2.CAPTION_MODE_SOFT, True, job_pb2.CAPTION_STYLE_WORDS),
        (job_pb2.CAPTION_MODE_BURNED, False, job_pb2.CAPTION_STYLE_SENTENCES),
        (job_pb2.CAPTION_MODE_BURNED, True, job_pb2.CAPTION_STYLE_WORDS),
    ],
    ids=["soft-vfr", "burned-cfr", "burned-words-vfr"],
)
def test_hostile_script_text_renders_in_both_caption_modes(
    tmp_path: Path,
    mode: job_pb2.CaptionMode.ValueType,
    variable_frame_rate: bool,
    style: job_pb2.CaptionStyle.ValueType,
) -> None:
    scenes = [
        job_pb2.Scene(title=text.split("\n")[0][:60], narration=text, caption=text, visual_hint="quote")
        for text in HOSTILE
    ]
    spec = with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic='Escapes: 100% "safe" \\ 🎬 שלום'),
            script=scenes,
            render=job_pb2.RenderSpec(
                width=640,
                height=360,
                captions=True,
                caption_mode=mode,
                caption_style=style,
                variable_frame_rate=variable_frame_rate,
            ),
        )
    )
    settings = _settings(tmp_path)
    run = run_job(settings, spec)
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    video = Path(run.job.output.video_path)
    assert decode_exit_code(video) == 0
    narration = sum(wav_seconds(path) for path in sorted((run.work_dir / "voice").glob("scene-*.wav")))
    assert abs(probe(video).duration - narration) <= 0.25
    assert audio_rms(video) > 0.01
    facts = probe(video)
    assert facts.subtitle_codecs == (["mov_text"] if mode == job_pb2.CAPTION_MODE_SOFT else [])
    srt_text = " ".join(
        text for _, _, text in parse_srt(Path(run.job.output.subtitle_path).read_text("utf-8"))
    )
    for text in HOSTILE:
        for word in text.replace("-->", "->").split():
            assert word in srt_text, word
    _assert_no_text_in_command(settings, run.job.id, list(HOSTILE))
    if mode == job_pb2.CAPTION_MODE_BURNED and style == job_pb2.CAPTION_STYLE_SENTENCES:
        _assert_emoji_cue_is_burned_in_colour(run.work_dir)
    if mode == job_pb2.CAPTION_MODE_BURNED and style == job_pb2.CAPTION_STYLE_WORDS:
        # The words reach libass as literal text: no brace opens an override block of their own.
        events = [
            line.split(",", 9)[9]
            for line in (run.work_dir / "captions.ass").read_text(encoding="utf-8").splitlines()
            if line.startswith("Dialogue:")
        ]
        assert events and all(
            re.fullmatch(r"(\{\\(k|fs)[\d.]+\}|\{\\fnNoto [A-Za-z ]+\}|[^{}])*", event.replace("\\N", " "))
            for event in events
        ), events


def test_hostile_topic_goes_through_the_script_writer(tmp_path: Path) -> None:
    topic = 'Percent 100% "quotes": C:\\dir\n🐝 שלום'
    spec = with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic=topic, audience='people: "all"', goal="learn 50% more"),
            plan=job_pb2.Plan(target_duration_seconds=6),
            render=job_pb2.RenderSpec(width=320, height=180, captions=True),
        )
    )
    settings = _settings(tmp_path)
    run = run_job(settings, spec)
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    assert decode_exit_code(Path(run.job.output.video_path)) == 0
    script = (run.work_dir / "script.json").read_text(encoding="utf-8")
    assert "100%" in script and "שלום" in script
    _assert_no_text_in_command(settings, run.job.id, [topic])
