"""Each built-in stage on its own, with real espeak-ng, real Pillow and real ffmpeg helpers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageChops

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins import ReelcastError, StageContext
from reelcast.plugins.builtin import script, visuals, voice
from reelcast.plugins.builtin.captions import build_cues, parse_srt, to_srt
from reelcast.plugins.builtin.ffmpeg import FfmpegLog, ProgressReader
from reelcast.plugins.host import PluginHost
from tests.media import wav_seconds


async def _context(
    tmp_path: Path, spec: job_pb2.JobSpec, artifacts: dict[str, Any] | None = None
) -> StageContext:
    reports: list[tuple[float, str]] = []
    context = StageContext(
        job_id="job",
        correlation_id="corr",
        stage_name="test",
        spec=with_defaults(spec),
        work_dir=tmp_path,
        log_dir=tmp_path / "data" / "Logs",
        settings=None,
        artifacts=artifacts or {},
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
        cancel_event=asyncio.Event(),
        _report=lambda fraction, message: reports.append((fraction, message)),
    )
    context.reports = reports  # type: ignore[attr-defined]
    return context


def _brief_spec(
    topic: str = "Bees", seconds: float = 30, audience: str = "", language: str = ""
) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic=topic, audience=audience, language=language),
        plan=job_pb2.Plan(target_duration_seconds=seconds),
    )


# -- registration ------------------------------------------------------------------------------------


def test_builtins_register_with_the_seed_weights_and_orders() -> None:
    shape = [
        (i.stage.name, i.stage.title, i.stage.weight, i.stage.order, i.builtin)
        for i in PluginHost.load().stages()
    ]
    assert shape == [
        ("script", "Script", 20, 100, True),
        ("voice", "Voice", 20, 200, True),
        ("visuals", "Visuals", 20, 300, True),
        ("render", "Rendering", 20, 400, True),
        ("postprocess", "Postprocessing", 10, 500, True),
    ]


# -- script ------------------------------------------------------------------------------------------


def test_script_writer_is_deterministic_and_uses_the_brief() -> None:
    brief = job_pb2.Brief(
        topic="Honey bees",
        audience="kids",
        goal="Understand the hive",
        tone="playful",
        key_points=[
            "Worker bees collect nectar from flowers.",
            "They fan it with their wings until it thickens.",
        ],
    )
    spec = with_defaults(job_pb2.JobSpec(brief=brief))
    first = script.write_script(spec)
    assert first == script.write_script(spec)
    text = " ".join(scene.narration for scene in first.scenes)
    assert "Honey bees" in text and "kids" in text and "understand the hive" in text
    assert "worker bees collect nectar" in text.lower()
    assert all(scene.title and scene.caption and scene.visual_hint for scene in first.scenes)
    other = script.write_script(with_defaults(job_pb2.JobSpec(brief=job_pb2.Brief(topic="Volcanoes"))))
    assert other != first


def test_brief_without_letters_is_e101() -> None:
    with pytest.raises(ReelcastError) as raised:
        script.write_script(with_defaults(job_pb2.JobSpec(brief=job_pb2.Brief(topic="!!! ???"))))
    assert raised.value.code == "E101-BRIEF_INVALID"


async def test_a_language_without_sentences_falls_back_to_english_with_a_note(tmp_path: Path) -> None:
    context = await _context(tmp_path, _brief_spec("Bees", language="ja"))
    script.run(context)
    document = json.loads((tmp_path / "script.json").read_text())
    assert document["scenes"][-1]["narration"].endswith("Thanks for watching.")
    assert any("'ja'" in note for note in document["notes"])
    assert any("'ja'" in message for _, message in context.reports)  # type: ignore[attr-defined]


async def test_supplied_script_skips_the_writer_and_fills_defaults(tmp_path: Path) -> None:
    spec = _brief_spec("ignored", language="ja")
    spec.script.add(title="Eins", narration="Erste Szene.")
    context = await _context(tmp_path, spec)
    assert script.run(context) == {"script": "script.json"}
    scenes = json.loads((tmp_path / "script.json").read_text())["scenes"]
    assert scenes == [
        {"title": "Eins", "narration": "Erste Szene.", "caption": "Erste Szene.", "visual_hint": "text"}
    ]


@pytest.mark.parametrize("narration", ["   ", "\n\t", "x" * 2001])
async def test_supplied_script_with_a_bad_scene_is_e102(tmp_path: Path, narration: str) -> None:
    spec = _brief_spec()
    spec.script.add(title="ok", narration="Fine.")
    spec.script.add(title="bad", narration=narration)
    context = await _context(tmp_path, spec)
    with pytest.raises(ReelcastError) as raised:
        script.run(context)
    assert raised.value.code == "E102-SCRIPT_INVALID"
    assert "Scene 2" in raised.value.message


# -- voice -------------------------------------------------------------------------------------------


async def _voiced(tmp_path: Path, **voice_fields: Any) -> tuple[StageContext, dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = _brief_spec()
    spec.script.add(narration="The quick brown fox jumps over the lazy dog. It rests in the sun.")
    spec.script.add(narration="🐝")
    spec.voice.CopyFrom(job_pb2.VoiceSpec(**voice_fields))
    context = await _context(tmp_path, spec)
    context.artifacts = script.run(context)
    artifacts = voice.run(context)
    return context, json.loads((tmp_path / artifacts["narration"]).read_text())


async def test_voice_writes_one_measured_wav_per_scene_and_the_joined_track(tmp_path: Path) -> None:
    _, narration = await _voiced(tmp_path)
    assert len(narration["scenes"]) == 2
    for entry in narration["scenes"]:
        assert entry["duration"] == pytest.approx(wav_seconds(tmp_path / entry["wav"]))
    assert narration["scenes"][0]["duration"] > 2
    assert narration["scenes"][1]["duration"] >= voice.MIN_SCENE_SECONDS
    assert narration["scenes"][1]["start"] == pytest.approx(narration["scenes"][0]["duration"], abs=1e-5)
    assert narration["duration"] == pytest.approx(wav_seconds(tmp_path / narration["audio"]))
    assert narration["duration"] == pytest.approx(sum(e["duration"] for e in narration["scenes"]), abs=1e-4)


async def test_voice_rate_and_pitch_are_applied(tmp_path: Path) -> None:
    _, slow = await _voiced(tmp_path / "slow", rate=100)
    _, fast = await _voiced(tmp_path / "fast", rate=300)
    assert slow["scenes"][0]["duration"] > 2 * fast["scenes"][0]["duration"]
    # Pitch moves espeak-ng voices only (Piper, the default English voice, has no pitch control).
    _, low = await _voiced(tmp_path / "low", name="en-us", pitch=5)
    _, high = await _voiced(tmp_path / "high", name="en-us", pitch=95)
    low_pcm = (tmp_path / "low" / low["scenes"][0]["wav"]).read_bytes()
    high_pcm = (tmp_path / "high" / high["scenes"][0]["wav"]).read_bytes()
    assert low_pcm != high_pcm


async def test_named_voice_is_used(tmp_path: Path) -> None:
    _, narration = await _voiced(tmp_path, name="en-us")
    assert narration["voice"] == "en-us"


async def test_unknown_voice_is_e201_listing_available_voices(tmp_path: Path) -> None:
    with pytest.raises(ReelcastError) as raised:
        await _voiced(tmp_path, name="xx-nonexistent")
    assert raised.value.code == "E201-VOICE_UNKNOWN"
    assert "en-us" in raised.value.message and "de" in raised.value.message


async def test_voice_stops_when_the_job_is_cancelled(tmp_path: Path) -> None:
    spec = _brief_spec()
    spec.script.add(narration="One.")
    context = await _context(tmp_path, spec)
    context.artifacts = script.run(context)
    context.cancel_event.set()
    with pytest.raises(ReelcastError) as raised:
        voice.run(context)
    assert raised.value.code == "E311-CANCELLED"


# -- visuals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (1080, 1080)])
def test_scene_text_is_wrapped_inside_the_safe_margins(width: int, height: int) -> None:
    long_title = "A very long title about the secret life of honey bees in the city " * 2
    scene = script.ScriptScene(long_title, "n", "A caption that also runs on for quite a while " * 4, "text")
    image = visuals.draw_cue_band(visuals.draw_scene(scene, 0, width, height), "Burned caption " * 8)
    assert image.size == (width, height)
    # White text pixels (all channels bright) must lie inside the 10 % title-safe margins.
    red, green, blue = (channel.point(lambda v: 255 if v > 240 else 0) for channel in image.split())
    difference = ImageChops.multiply(ImageChops.multiply(red, green), blue)
    box = difference.getbbox()
    assert box is not None
    left, top, right, bottom = box
    assert left >= width * 0.1 - 2 and right <= width * 0.9 + 2
    assert top >= height * 0.05 and bottom <= height * 0.95


def test_text_fits_by_wrapping_then_shrinking_then_ellipsis() -> None:
    lines, size = visuals.fit("word " * 200, 60, 500, 3, 20)
    assert len(lines) == 3 and size == 20 and lines[-1].endswith("…")
    assert all(visuals.font(size).getlength(line) <= 500 for line in lines)


# -- captions and ffmpeg helpers --------------------------------------------------------------------


def test_cues_cover_each_scene_exactly_and_round_trip_through_srt() -> None:
    cues = build_cues(["First sentence here. Second one follows it. " * 3, "Short."], [0.0, 7.5], [7.5, 1.25])
    assert cues[0].start == 0.0 and cues[-1].end == pytest.approx(8.75)
    assert next(c for c in cues if c.scene == 1).start == pytest.approx(7.5)
    assert all(len(c.text) <= 84 for c in cues)
    parsed = parse_srt(to_srt(cues))
    assert [(round(s, 3), round(e, 3), t) for s, e, t in parsed] == [
        (round(c.start, 3), round(c.end, 3), c.text) for c in cues
    ]


def test_progress_reader_clamps_ignores_na_and_never_goes_back() -> None:
    seen: list[float] = []
    reader = ProgressReader(10.0, lambda fraction, _seconds: seen.append(fraction))
    microseconds = ["N/A", "2000000", "1000000", "-5", "5000000", "99000000", "6000000"]
    for line in [*(f"out_time_us={value}" for value in microseconds), "progress=end"]:
        reader.line(line)
    assert seen == [0.2, 0.5, 1.0]


def test_ffmpeg_log_keeps_head_and_tail_under_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    log = FfmpegLog(
        path, job_id="j", correlation_id="c", resolution="2x2", ffmpeg_path="/ff", arguments=["-i", "a b"],
        max_bytes=4096,
    )  # fmt: skip
    for number in range(2000):
        log.stderr_line(f"line {number:05d} " + "x" * 40)
    assert "line 01999" in log.stderr_snippet and len(log.stderr_snippet.encode()) <= 16 * 1024
    log.close(3)
    log.close(3)
    text = path.read_text()
    assert len(text.encode()) <= 4096 + 200
    assert "[stderr] line 00000" in text and "[stderr] line 01999" in text
    assert "lines omitted" in text and "line 01000" not in text
    assert text.splitlines()[5] == "Command: -i 'a b'"
    assert text.endswith("Exit Code: 3\n")


def test_registered_stage_functions_match_their_modules() -> None:
    runs: dict[str, Callable[..., Any]] = {i.stage.name: i.stage.run for i in PluginHost.load().stages()}
    assert runs["script"] is script.run and runs["voice"] is voice.run and runs["visuals"] is visuals.run
