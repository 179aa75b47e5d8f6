"""The music under the narration: a bed made offline whose mood follows the brief, or the owner's own track.

**The bed** is a few bars of chords, an arpeggio and a bass line played by the General MIDI soundfont that
``pretty_midi`` ships (``TimGM6mb.sf2``), synthesized note by note by ``pyTinySoundFont`` (a port of
TinySoundFont) and summed with numpy. It is one loop of ``BARS`` bars, written so that it repeats without a
seam (the release of its last notes rings on into its first), and the mix repeats it to the video's length.
Nothing is random, so the same mood gives the same bytes.

*Intentional divergence:* the issue names the ``tinysoundfont`` package. Every version of it declares a
hard dependency on ``pyaudio``, which has no Linux wheel and needs PortAudio's headers and a compiler to
build, so a plain ``pip install reelcast`` would fail on a fresh machine; pip cannot leave one dependency
out of another package's metadata. ``pyTinySoundFont`` ports the same synthesizer, ships an abi3 wheel with
no dependencies, and renders a single note offline, which is all a bed needs (we never play to a device).

**The mood** is ``JobSpec.music.mood`` when given, else read from the words of ``brief.tone``
(``MOOD_WORDS``), else calm. ``none`` turns the music off. **The owner's track** (``music.media_id``, an
uploaded audio file) replaces the bed; the mix loops or cuts it to the video's length.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import MUSIC_MOODS, MUSIC_NONE
from reelcast.plugins.stage import StageContext

# The soundfont's samples are recorded at 22 to 32 kHz, so a bed synthesized at 24 kHz loses nothing
# audible and takes half the time of 48 kHz (the mix resamples it to the output's 48 kHz).
SAMPLE_RATE = 24000
BARS = 8
BEATS_PER_BAR = 4
SOUNDFONT = "TimGM6mb.sf2"
# The peak of the bed as written; the mix sets its loudness under the voice, this only keeps headroom.
_PEAK = 0.5

CALM, UPBEAT, SERIOUS = "calm", "upbeat", "serious"
DEFAULT_MOOD = CALM
# Words of a brief's tone that choose a mood (the first mood with a word in the tone wins).
MOOD_WORDS: dict[str, frozenset[str]] = {
    UPBEAT: frozenset(
        re.findall(
            r"\w+",
            "upbeat energetic fun playful exciting excited cheerful enthusiastic lively happy bright punchy "
            "bold dynamic optimistic inspiring motivational joyful vibrant",
        )
    ),
    SERIOUS: frozenset(
        re.findall(
            r"\w+",
            "serious formal professional authoritative somber sombre dramatic urgent solemn grave technical "
            "academic documentary corporate sober earnest dark",
        )
    ),
    CALM: frozenset(
        re.findall(
            r"\w+",
            "calm relaxed gentle soothing warm friendly soft peaceful quiet reflective casual cozy "
            "conversational tranquil",
        )
    ),
}


@dataclass(frozen=True)
class Part:
    """One instrument of a bed: a General MIDI program playing the chords in one pattern."""

    program: int
    velocity: float
    # "hold": the chord for the whole bar; "arpeggio": its notes one by one, ``steps`` per bar, an octave
    # up; "pulse": the chord struck ``steps`` times a bar; "bass": its root, ``steps`` times a bar, an
    # octave down.
    pattern: str
    steps: int = 1
    # Gains of the left and right channels: a little width without any effect.
    pan: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class Mood:
    tempo_bpm: int
    # One chord per bar (MIDI note numbers), played in order and repeated to fill ``BARS``.
    chords: tuple[tuple[int, ...], ...]
    parts: tuple[Part, ...]


MOODS: dict[str, Mood] = {
    # I-vi-IV-V in C, slow: a warm pad and a soft electric piano arpeggio.
    CALM: Mood(
        tempo_bpm=72,
        chords=((48, 55, 59, 64), (45, 52, 55, 60), (41, 48, 52, 57), (43, 50, 55, 59)),
        parts=(
            Part(program=89, velocity=0.5, pattern="hold"),
            Part(program=4, velocity=0.35, pattern="arpeggio", steps=8, pan=(0.8, 1.0)),
            Part(program=32, velocity=0.45, pattern="bass", steps=1),
        ),
    ),
    # I-V-vi-IV in G, brisk: struck electric piano chords, strings under them, a walking bass.
    UPBEAT: Mood(
        tempo_bpm=112,
        chords=((43, 50, 55, 59), (38, 50, 54, 57), (40, 52, 55, 59), (36, 52, 55, 60)),
        parts=(
            Part(program=48, velocity=0.3, pattern="hold"),
            Part(program=4, velocity=0.4, pattern="pulse", steps=8, pan=(1.0, 0.8)),
            Part(program=24, velocity=0.3, pattern="arpeggio", steps=8, pan=(0.8, 1.0)),
            Part(program=33, velocity=0.55, pattern="bass", steps=4),
        ),
    ),
    # i-VI-III-VII in A minor, slow: strings, low piano roots, a harp arpeggio.
    SERIOUS: Mood(
        tempo_bpm=64,
        chords=((45, 52, 57, 60), (41, 48, 53, 57), (36, 48, 52, 55), (43, 50, 55, 59)),
        parts=(
            Part(program=49, velocity=0.5, pattern="hold"),
            Part(program=0, velocity=0.4, pattern="bass", steps=2),
            Part(program=46, velocity=0.3, pattern="arpeggio", steps=4, pan=(0.8, 1.0)),
        ),
    ),
}
assert set(MOODS) == set(MUSIC_MOODS)


def mood_of(spec: job_pb2.JobSpec) -> str:
    """The bed's mood for ``spec``: ``music.mood`` if set ("none" included), else the tone's, else calm."""
    if spec.music.mood:
        return spec.music.mood.lower()
    words = set(re.findall(r"[a-z]+", spec.brief.tone.lower()))
    for mood in (UPBEAT, SERIOUS, CALM):
        if words & MOOD_WORDS[mood]:
            return mood
    return DEFAULT_MOOD


def music_source(ctx: StageContext) -> Path | None:
    """The music file the mix loops under the narration: the owner's track (``music.media_id``, E451 when
    it is gone), else the bed of the job's mood written into the work dir, else None for ``none``."""
    if ctx.spec.music.media_id:
        return ctx.media(ctx.spec.music.media_id).path
    mood = mood_of(ctx.spec)
    if mood == MUSIC_NONE:
        return None
    path = ctx.path(f"music/bed-{mood}.wav")
    path.parent.mkdir(exist_ok=True)
    write_bed(mood, path)
    return path


def write_bed(mood: str, path: Path) -> None:
    """Writes one seamless loop of ``mood``'s bed: 24 kHz 16-bit stereo WAV."""
    loop = bed_samples(mood)
    pcm = np.round(loop * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(pcm)


@functools.cache
def bed_samples(mood: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One loop of ``mood``'s bed as float samples, shape (frames, 2), peak ``_PEAK``: made once per process
    (a second or two of synthesis), since it depends on the mood alone."""
    piece = MOODS[mood]
    beat = round(SAMPLE_RATE * 60 / piece.tempo_bpm)
    bar = beat * BEATS_PER_BAR
    length = bar * BARS
    # Room for the release of the last notes, folded back onto the start so that the loop has no seam.
    out = np.zeros((length + 4 * SAMPLE_RATE, 2), dtype=np.float32)
    for index in range(BARS):
        chord = piece.chords[index % len(piece.chords)]
        # The second pass through the chords plays its arpeggio downwards: the loop is less obviously one.
        downwards = index >= len(piece.chords)
        for part in piece.parts:
            for offset, key, length_samples in _notes(part, chord, bar, downwards):
                _add(out, _note(part.program, key, part.velocity, length_samples), index * bar + offset, part)
    out[: out.shape[0] - length] += out[length:]
    loop = out[:length]
    peak = float(np.abs(loop).max())
    return (loop * (_PEAK / peak)).astype(np.float32) if peak > 0 else loop


def _notes(part: Part, chord: tuple[int, ...], bar: int, downwards: bool) -> list[tuple[int, int, int]]:
    """(offset in the bar, MIDI key, held samples) of each note ``part`` plays over ``chord``."""
    step = bar // part.steps
    if part.pattern == "hold":
        return [(0, key, bar) for key in chord]
    if part.pattern == "pulse":
        return [(n * step, key, int(step * 0.6)) for n in range(part.steps) for key in chord[1:]]
    if part.pattern == "bass":
        return [(n * step, chord[0] - 12, int(step * 0.9)) for n in range(part.steps)]
    ordered = list(reversed(chord)) if downwards else list(chord)
    return [(n * step, ordered[n % len(ordered)] + 12, int(step * 1.5)) for n in range(part.steps)]


def _add(out: np.ndarray[Any, np.dtype[np.float32]], note: np.ndarray[Any, Any], at: int, part: Part) -> None:
    end = min(at + note.shape[0], out.shape[0])
    out[at:end] += note[: end - at] * np.asarray(part.pan, dtype=np.float32)


@functools.cache
def _note(program: int, key: int, velocity: float, held: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One note of a General MIDI program, held for ``held`` samples then released: (frames, 2)."""
    import pyTinySoundFont

    samples, presets = _soundfont()
    count, buffer = pyTinySoundFont.SynthNote(
        samples, presets[program], key, velocity, held, pyTinySoundFont.STEREO_INTERLEAVED, float(SAMPLE_RATE)
    )
    if not count or buffer is None:
        return np.zeros((0, 2), dtype=np.float32)
    return np.frombuffer(buffer, dtype=np.float32).reshape(-1, 2)[:count]


@functools.cache
def _soundfont() -> tuple[Any, dict[int, Any]]:
    """The soundfont's sample data and its bank 0 presets by program number, loaded once per process."""
    import pyTinySoundFont

    loaded = pyTinySoundFont.LoadSF2(str(soundfont_path()))
    presets = {
        preset["preset"]: preset for preset in pyTinySoundFont.LoadPresets(loaded) if preset["bank"] == 0
    }
    # The port switches a region's lowpass on at 13500 cents (about 20 kHz) and up, where TinySoundFont
    # leaves it off; above the output's Nyquist frequency that filter is unstable and the note turns into
    # infinities. Capping the cutoff at 0.45 of the sample rate keeps every filter stable.
    cutoff = 1200 * math.log2(0.45 * SAMPLE_RATE / 8.176)
    for preset in presets.values():
        for region in preset["regions"]:
            region["initialFilterFc"] = min(region["initialFilterFc"], cutoff)
    return loaded[1], presets


def soundfont_path() -> Path:
    """The General MIDI soundfont of the installed ``pretty_midi`` (found without importing it)."""
    found = importlib.util.find_spec("pretty_midi")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("pretty_midi (which ships the soundfont) is not installed")
    return Path(next(iter(found.submodule_search_locations))) / SOUNDFONT
