"""The intro-card plugin, tested with the fixtures reelcast ships for plugin authors (docs/plugins.md):
``reelcast_stage`` runs the stage alone, ``reelcast_server`` runs whole jobs on a real server."""

from __future__ import annotations

import json
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from PIL import Image
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import ReelcastError, Stage
from reelcast.plugins.testing import PluginHost, StageHarness

import reelcast_intro_card

SAMPLE_RATE = 16000
WIDTH, HEIGHT = 320, 180
# A short, small job: the real built-in pipeline runs in a few seconds.
SMALL_SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(topic="Why the sky is blue"),
    plan=job_pb2.Plan(target_duration_seconds=4),
    render=job_pb2.RenderSpec(width=WIDTH, height=HEIGHT, fps=10),
)


def intro_card_stage() -> Stage:
    stages: list[Stage] = []
    reelcast_intro_card.register_stages(register=stages.append)
    (stage,) = stages
    return stage


def write_upstream(harness: StageHarness, seconds: float = 1.0) -> dict[str, Any]:
    """What voice and visuals publish (docs/stages.md), written by hand: a tone and two frames."""
    harness.path("voice").mkdir()
    with wave.open(str(harness.path("voice/narration.wav")), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(b"\x10\x20" * int(SAMPLE_RATE * seconds))
    narration = {
        "sample_rate": SAMPLE_RATE,
        "audio": "voice/narration.wav",
        "duration": seconds,
        "voice": "en",
        "scenes": [{"wav": "voice/scene-001.wav", "start": 0.0, "duration": seconds}],
    }
    frames = [
        {"image": "frames/scene-001.png", "start": 0.0, "duration": seconds / 2, "scene": 0},
        {"image": "frames/cue-0002.png", "start": seconds / 2, "duration": seconds / 2, "scene": 0},
    ]
    visuals = {
        "width": WIDTH,
        "height": HEIGHT,
        "scene_images": ["frames/scene-001.png"],
        "frames": frames,
        "cues": [{"scene": 0, "start": 0.0, "end": seconds, "text": "Hello"}],
    }
    harness.path("voice.json").write_text(json.dumps(narration))
    harness.path("visuals.json").write_text(json.dumps(visuals))
    return {"narration": "voice.json", "visuals": "visuals.json"}


def test_the_stage_sits_between_visuals_and_render(
    reelcast_plugin_host: PluginHost, register_reelcast_plugin: Callable[[object, str], str]
) -> None:
    if reelcast_plugin_host.stage("intro-card") is None:  # not installed: register it for this test
        register_reelcast_plugin(reelcast_intro_card, "intro-card")
    names = [installed.stage.name for installed in reelcast_plugin_host.stages()]
    assert names.index("visuals") < names.index("intro-card") < names.index("render")


def test_the_card_comes_first_and_everything_else_moves_back_by_its_length(
    reelcast_stage: StageHarness,
) -> None:
    upstream = write_upstream(reelcast_stage, seconds=1.0)

    outcome = reelcast_stage.run(intro_card_stage(), SMALL_SPEC, upstream)

    visuals = json.loads(outcome.path(outcome.artifacts["visuals"]).read_text())
    narration = json.loads(outcome.path(outcome.artifacts["narration"]).read_text())
    card, *frames = visuals["frames"]
    assert card == {"image": "intro-card/card.png", "start": 0.0, "duration": 2.0, "scene": -1}
    assert [(f["start"], f["duration"]) for f in frames] == [(2.0, 0.5), (2.5, 0.5)]
    assert visuals["cues"] == [{"scene": 0, "start": 2.0, "end": 3.0, "text": "Hello"}]
    assert narration["scenes"][0]["start"] == 2.0
    assert narration["duration"] == pytest.approx(3.0)
    with wave.open(str(outcome.path(narration["audio"])), "rb") as reader:
        assert reader.getframerate() == SAMPLE_RATE
        pcm = reader.readframes(reader.getnframes())
    silence = 2 * SAMPLE_RATE * 2
    assert pcm[:silence] == b"\x00" * silence
    assert pcm[silence:] == b"\x10\x20" * SAMPLE_RATE
    with Image.open(outcome.path(card["image"])) as image:
        assert image.size == (WIDTH, HEIGHT)
        # The accent rule across the middle, in the brand's accent colour.
        assert image.convert("RGB").getpixel((WIDTH // 2, int(HEIGHT * 0.5) + 1)) == (255, 176, 32)
    assert outcome.fractions == sorted(outcome.fractions)
    assert outcome.fractions[-1] == 1.0


def test_the_card_length_and_brand_come_from_the_stage_settings(reelcast_stage: StageHarness) -> None:
    # Strings, as the server reads them from REELCAST_PLUGIN_INTRO_CARD_SECONDS / _BRAND.
    settings = {"seconds": "0.75", "brand": "Acme"}
    outcome = reelcast_stage.run(
        intro_card_stage(), SMALL_SPEC, write_upstream(reelcast_stage), settings=settings
    )
    visuals = json.loads(outcome.path(outcome.artifacts["visuals"]).read_text())
    assert visuals["frames"][0]["duration"] == 0.75
    default = reelcast_intro_card.draw_card("reelcast", "Why the sky is blue", WIDTH, HEIGHT)
    with Image.open(outcome.path("intro-card/card.png")) as branded:
        assert list(branded.convert("RGB").getdata()) != list(default.getdata())


def test_without_the_voice_artifact_the_stage_fails_with_e306(reelcast_stage: StageHarness) -> None:
    upstream = write_upstream(reelcast_stage)
    del upstream["narration"]
    with pytest.raises(ReelcastError) as failure:
        reelcast_stage.run(intro_card_stage(), SMALL_SPEC, upstream)
    assert failure.value.code == "E306-ARTIFACT_MISSING"


def test_a_cancelled_job_stops_the_stage(reelcast_stage: StageHarness) -> None:
    with pytest.raises(ReelcastError) as failure:
        reelcast_stage.run(intro_card_stage(), SMALL_SPEC, write_upstream(reelcast_stage), cancelled=True)
    assert failure.value.code == "E311-CANCELLED"
    assert not reelcast_stage.path("intro-card/card.png").exists()


def test_on_real_upstream_artifacts_from_the_builtin_stages(reelcast_stage: StageHarness) -> None:
    for name in ("script", "voice", "visuals"):
        reelcast_stage.run(name, SMALL_SPEC)
    spoken = json.loads(reelcast_stage.path(reelcast_stage.artifacts["narration"]).read_text())["duration"]

    outcome = reelcast_stage.run(intro_card_stage(), SMALL_SPEC)

    narration = json.loads(outcome.path(outcome.artifacts["narration"]).read_text())
    assert narration["duration"] == pytest.approx(spoken + 2.0, abs=1e-3)
    assert outcome.artifacts["visuals"] == "intro-card/visuals.json"


def first_frame_pixels(video: Path, at_seconds: float) -> bytes:
    """The video's frame at ``at_seconds`` as raw RGB bytes, decoded by the ffmpeg reelcast itself uses."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    output = ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    argv = [ffmpeg, "-v", "error", "-ss", f"{at_seconds}", "-i", str(video), *output]
    return subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout


def mean_difference(a: bytes, b: bytes) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_a_whole_job_renders_the_card_first(reelcast_server: Callable[..., Any]) -> None:
    server = reelcast_server(reelcast_intro_card, "intro-card", builtins=True)

    run = server.run_job(SMALL_SPEC, timeout=240)

    assert run.succeeded, run.job.errors
    assert run.stage_order() == ["script", "voice", "visuals", "intro-card", "render", "postprocess"]
    narration = json.loads(Path(run.job.output.video_path).parent.joinpath("voice.json").read_text())
    assert run.job.output.duration_seconds == pytest.approx(narration["duration"] + 2.0, abs=0.3)
    video = Path(run.job.output.video_path)
    card = Image.open(video.parent / "intro-card" / "card.png").convert("RGB").tobytes()
    assert mean_difference(first_frame_pixels(video, 0.5), card) < 12
    assert mean_difference(first_frame_pixels(video, 2.5), card) > 25
