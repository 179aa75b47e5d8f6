"""The music bed made offline (plugins/builtin/music.py) and ``JobSpec.music`` in a spec: which mood a job
gets, that the bed is real music made the same way every time, and that a mood nobody knows is refused."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import validate_spec
from reelcast.plugins.builtin import music


def _spec(tone: str = "", mood: str = "", media_id: str = "") -> job_pb2.JobSpec:
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Volcanoes", tone=tone),
        music=job_pb2.MusicSpec(mood=mood, media_id=media_id),
    )


@pytest.mark.parametrize(
    ("tone", "mood"),
    [
        ("", "calm"),
        ("friendly and warm", "calm"),
        ("Energetic, fun!", "upbeat"),
        ("formal and professional", "serious"),
        ("curious", "calm"),
    ],
)
def test_the_mood_follows_the_words_of_the_tone(tone: str, mood: str) -> None:
    assert music.mood_of(_spec(tone=tone)) == mood


def test_a_mood_in_the_spec_overrides_the_tone() -> None:
    assert music.mood_of(_spec(tone="energetic", mood="serious")) == "serious"
    assert music.mood_of(_spec(tone="energetic", mood="None")) == "none"


def _read(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as reader:
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return frames.reshape(-1, reader.getnchannels()), reader.getframerate(), reader.getnchannels()


def test_the_same_mood_gives_the_same_bytes(tmp_path: Path) -> None:
    music.write_bed("upbeat", tmp_path / "first.wav")
    # Synthesized again from nothing, not taken from the process's cache.
    music.bed_samples.cache_clear()
    music._note.cache_clear()
    music.write_bed("upbeat", tmp_path / "second.wav")
    assert (tmp_path / "first.wav").read_bytes() == (tmp_path / "second.wav").read_bytes()


@pytest.mark.parametrize("mood", ["calm", "upbeat", "serious"])
def test_each_bed_is_eight_bars_of_stereo_chords_at_its_tempo(tmp_path: Path, mood: str) -> None:
    path = tmp_path / f"{mood}.wav"
    music.write_bed(mood, path)
    frames, rate, channels = _read(path)
    assert channels == 2
    seconds = frames.shape[0] / rate
    assert seconds == pytest.approx(music.BARS * 4 * 60 / music.MOODS[mood].tempo_bpm, abs=0.01)
    # Sound all the way through, no silent bar, and the two channels differ (the parts are panned).
    bar = frames.shape[0] // music.BARS
    levels = [np.sqrt(np.mean(frames[n * bar : (n + 1) * bar].astype(np.float64) ** 2)) for n in range(8)]
    assert min(levels) > 300, levels
    assert np.any(frames[:, 0] != frames[:, 1])
    # A bed under a voice: most of its energy below 1 kHz, where speech has least of its consonants.
    mono = frames.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono)) ** 2
    frequencies = np.fft.rfftfreq(mono.size, 1 / rate)
    assert spectrum[frequencies < 1000].sum() / spectrum.sum() > 0.8


def test_the_moods_sound_different(tmp_path: Path) -> None:
    beds = {mood: music.bed_samples(mood) for mood in music.MOODS}
    assert len({bed.shape[0] for bed in beds.values()}) == 3


@pytest.mark.parametrize("mood", ["", "calm", "upbeat", "serious", "none", "Upbeat"])
def test_the_known_moods_are_valid(mood: str) -> None:
    assert validate_spec(_spec(mood=mood)) == []


def test_an_unknown_mood_is_a_field_violation_naming_the_choices() -> None:
    violations = validate_spec(_spec(mood="loud"))
    assert [violation.field for violation in violations] == ["spec.music.mood"]
    assert "'calm'" in violations[0].description and "'none'" in violations[0].description


def test_no_music_and_a_track_at_once_is_a_field_violation() -> None:
    violations = validate_spec(_spec(mood="none", media_id="m-1"))
    assert [violation.field for violation in violations] == ["spec.music.mood"]
