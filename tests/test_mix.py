"""The sound of a rendered video: the music bed under the narration, ducked while it speaks, and the mix at
-14 LUFS with its true peak under -1 dBTP, measured with ffmpeg's ebur128 on the MP4 itself, for both
engines (Piper normalises each sentence to full scale; espeak-ng does not).

One tiny render per voice (320x180, 10 fps, about 4 s) is shared by the module; the music-only checks run
the mix alone (``prepare_audio``) on that render's narration."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import ReelcastError, Stage, StageContext
from reelcast.plugins.artifacts import read_narration
from reelcast.plugins.builtin import mix
from reelcast.plugins.builtin.ffmpeg import ffmpeg_executable
from reelcast.plugins.host import PluginHost
from reelcast.plugins.stage import MediaFile
from reelcast.plugins.testing import StageHarness
from tests.media import FFMPEG, Window, dbfs, decoded_audio, dominant_frequency, loudness, power_in

RATE = 48000
SCENES = ("Magma rises. Then it cools.", "Volcanoes sleep.")
VOICES = {"piper": "en-us-joe", "espeak": "en-us"}


def _spec(voice: str, music: job_pb2.MusicSpec | None = None) -> job_pb2.JobSpec:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Volcanoes"),
        voice=job_pb2.VoiceSpec(name=voice),
        render=job_pb2.RenderSpec(width=320, height=180, fps=10),
        music=music,
    )
    for narration in SCENES:
        spec.script.add(title="Scene", narration=narration)
    return spec


@dataclass
class Rendered:
    work_dir: Path
    narration: dict[str, Any]

    @property
    def video(self) -> Path:
        return self.work_dir / "video.mp4"

    def scene_change(self) -> Window:
        """The pause between the two scenes, a little inside the words around it."""
        first, second = self.narration["scenes"]
        return first["words"][-1]["end"] + 0.05, second["words"][0]["start"] - 0.05

    def speech(self) -> list[Window]:
        """Every spoken word (at least 0.1 s long)."""
        words = [word for scene in self.narration["scenes"] for word in scene["words"]]
        return [(w["start"], w["end"]) for w in words if w["end"] - w["start"] >= 0.1]


@pytest.fixture(scope="module", params=list(VOICES), ids=list(VOICES))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A real render (script, voice, visuals, render) with the default music: the calm bed."""
    root = tmp_path_factory.mktemp(f"mix-{request.param}")
    harness = StageHarness(root / "work", root / "logs", PluginHost.load())
    spec = _spec(VOICES[request.param])
    for stage in ("script", "voice", "visuals", "render"):
        harness.run(stage, spec)
    narration = json.loads((harness.work_dir / "voice.json").read_text(encoding="utf-8"))
    return Rendered(harness.work_dir, narration)


async def _mix_only(ctx: StageContext) -> dict[str, Any]:
    audio = await mix.prepare_audio(ctx, read_narration(ctx), ffmpeg_executable(None))
    return {"mix": str(audio.relative_to(ctx.work_dir))}


# The mix alone, as the render stage runs it, on an existing narration.
MIX_ONLY = Stage(name="mix-only", title="Mix", weight=1, order=1, run=_mix_only)


def _mix_of(rendered: Rendered, tmp_path: Path, music: job_pb2.MusicSpec, **media: MediaFile) -> Path:
    harness = StageHarness(tmp_path / "work", tmp_path / "logs", PluginHost.load())
    shutil.copytree(rendered.work_dir / "voice", harness.path("voice"))
    shutil.copy(rendered.work_dir / "voice.json", harness.path("voice.json"))
    harness.media.update(media)
    outcome = harness.run(MIX_ONLY, _spec(rendered.narration["voice"], music), {"narration": "voice.json"})
    return outcome.path(outcome.artifacts["mix"])


# -- the loudness of the published file --------------------------------------------------------------------


def test_the_video_is_at_minus_14_lufs_with_its_true_peak_under_minus_1_dbtp(rendered: Rendered) -> None:
    measured = loudness(rendered.video)
    assert -15.0 <= measured.integrated <= -13.0, measured
    assert measured.true_peak <= -1.0, measured


def test_the_video_sound_is_48_khz_stereo_under_the_stereo_bed(rendered: Rendered) -> None:
    dump = subprocess.run([FFMPEG, "-hide_banner", "-i", str(rendered.video)], capture_output=True, text=True)
    assert "Audio: aac (LC)" in dump.stderr and "48000 Hz, stereo" in dump.stderr, dump.stderr


# -- the music under the voice ------------------------------------------------------------------------------


def test_the_music_plays_in_the_pause_between_scenes(rendered: Rendered) -> None:
    pause = rendered.scene_change()
    assert pause[1] - pause[0] >= 0.25, pause
    video = decoded_audio(rendered.video, RATE)
    voice = decoded_audio(rendered.work_dir / rendered.narration["audio"], RATE)
    # The voice is silent there, and the video is not: what plays is the music.
    assert dbfs(power_in(voice, RATE, [pause])) < -60
    assert dbfs(power_in(video, RATE, [pause])) > -50


def test_the_music_is_at_least_10_db_under_the_voice_while_it_speaks(rendered: Rendered) -> None:
    video = decoded_audio(rendered.video, RATE)
    music = decoded_audio(rendered.work_dir / mix.MUSIC_STEM_FILE, RATE)
    pause, speech = [rendered.scene_change()], rendered.speech()
    # The stem is the ducked music before the master gain; in the pause the video holds the music alone,
    # so the ratio there is that gain, measured.
    master_gain = power_in(video, RATE, pause) / power_in(music, RATE, pause)
    music_power = power_in(music, RATE, speech) * master_gain
    voice_power = power_in(video, RATE, speech) - music_power
    assert dbfs(voice_power) - dbfs(music_power) >= 10, (dbfs(voice_power), dbfs(music_power))


def test_the_music_ducks_while_a_word_is_spoken(rendered: Rendered) -> None:
    music = decoded_audio(rendered.work_dir / mix.MUSIC_STEM_FILE, RATE)
    ducked = dbfs(power_in(music, RATE, rendered.speech()))
    free = dbfs(power_in(music, RATE, [rendered.scene_change()]))
    assert free - ducked >= 4, (free, ducked)


def test_mood_none_is_the_narration_alone_at_the_same_loudness(rendered: Rendered, tmp_path: Path) -> None:
    silent = _mix_of(rendered, tmp_path, job_pb2.MusicSpec(mood="none"))
    samples = decoded_audio(silent, RATE)
    assert dbfs(power_in(samples, RATE, [rendered.scene_change()])) < -60
    measured = loudness(silent)
    assert -15.0 <= measured.integrated <= -13.0 and measured.true_peak <= -1.0, measured
    dump = subprocess.run([FFMPEG, "-hide_banner", "-i", str(silent)], capture_output=True, text=True)
    assert "48000 Hz, mono" in dump.stderr, dump.stderr


def test_the_owners_track_replaces_the_bed_looped_to_the_video(rendered: Rendered, tmp_path: Path) -> None:
    # One second of 1 kHz, far shorter than the narration: the pause after it hears it only if it loops.
    track = tmp_path / "track.wav"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=1", str(track)], check=True
    )
    media = MediaFile(
        media_id="m-track", kind="audio", path=track, content_type="audio/wav", duration_seconds=1.0
    )
    mixed = _mix_of(rendered, tmp_path, job_pb2.MusicSpec(media_id="m-track"), **{"m-track": media})
    samples = decoded_audio(mixed, RATE)
    pause = rendered.scene_change()
    assert pause[0] > 1.0, pause
    assert abs(dominant_frequency(samples, RATE, pause) - 1000) <= 5
    assert dbfs(power_in(samples, RATE, [pause])) > -50


def test_a_track_that_is_gone_fails_the_mix_with_media_not_available(
    rendered: Rendered, tmp_path: Path
) -> None:
    with pytest.raises(ReelcastError) as raised:
        _mix_of(rendered, tmp_path, job_pb2.MusicSpec(media_id="m-deleted"))
    assert raised.value.error is errors.MEDIA_NOT_AVAILABLE
