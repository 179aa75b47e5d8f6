"""The built-in voice stage: real speech, one WAV per scene, durations and word timings measured.

English speaks with Piper's joe (``en-us-joe``) unless the spec names another voice; every other language
with espeak-ng (voices.py lists both engines' voices). The rate is the voice's words per minute (Piper's
``length_scale``, espeak's own rate); the pitch moves espeak's voices only, and the stage says so in its
progress message when a Piper voice is asked for another pitch than the default.

The stage stops with E203 as soon as the measured narration passes ``MAX_NARRATION_SECONDS``, whatever
the script's estimate at creation said.

Scene changes are real pauses (pauses.py): ``SCENE_PAUSE_SECONDS`` of silence, half at the end of the
scene before and half at the start of the scene after, so that the picture cuts in the middle of the pause
(neither on the last word nor on the next one), and the narration ends with ``ENDING_SECONDS`` of silence,
under which the music fades out. Each scene's WAV is padded with silence to at least
``MIN_SCENE_SECONDS`` (a scene of only emoji may speak nothing at all). The scene WAVs are also joined
into ``voice/narration.wav``, the voice of the render's mix (mix.py), so that the audio's length is
exactly the sum of the scenes'.

Artifact: ``narration`` -> ``voice.json`` (``{"sample_rate", "audio", "duration", "voice",
"scenes": [{"wav", "start", "duration", "words": [{"text", "start", "end"}]}]}``, times in seconds from the
start of the whole narration, paths relative to the work dir). A scene's words are its narration split on
whitespace, in order, each with when it is spoken (word_timings.py).
"""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelcast.jobs import errors, tracing
from reelcast.jobs.validation import DEFAULT_PITCH, MAX_NARRATION_SECONDS
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import NarrationArtifact, NarrationScene, WordTiming, read_narration
from reelcast.plugins.builtin import espeak, piper_tts, voices
from reelcast.plugins.builtin.pauses import ENDING_SECONDS, SCENE_PAUSE_SECONDS
from reelcast.plugins.builtin.script import load_scenes, speaking_rate
from reelcast.plugins.builtin.word_timings import Span, words_of

VOICE_FILE = "voice.json"
NARRATION_WAV = "voice/narration.wav"
MIN_SCENE_SECONDS = 1.0


@dataclass(frozen=True)
class VoiceSettings:
    """The voice stage's knobs (``REELCAST_PLUGIN_VOICE_<FIELD>``, or the older name in ``env``)."""

    # An espeak-ng data directory; by default the one shipped with espeakng-loader.
    espeak_data_path: str | None = field(default=None, metadata={"env": "REELCAST_ESPEAK_DATA"})


def wav_duration(path: Path) -> float:
    """The duration of a WAV file, from its sample count."""
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def _write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)


def resolve_voice(name: str, language: str, data_path: str | None) -> voices.Voice:
    """The voice named in the spec, else the language's default voice; E201 lists the choices."""
    voice = voices.find_voice(name, language, data_path)
    if voice is None:
        keys = sorted({candidate.key for candidate in voices.available_voices(data_path)})
        raise ReelcastError(
            errors.VOICE_UNKNOWN,
            f"Voice {name or language!r} is not installed. Available voices: {', '.join(keys)}.",
        )
    return voice


def speakable(text: str) -> str:
    """Narration as the engines should read it: one line (newlines become sentence pauses), with the same
    whitespace-separated words as ``text``, so that word timings map one to one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ". ".join(line.rstrip(".") if not line.endswith((".", "!", "?")) else line for line in lines)


def _speak(
    ctx: StageContext,
    text: str,
    voice: voices.Voice,
    rate: int,
    pitch: int,
    data_path: str | None,
    after_sentence: Callable[[float], bool],
) -> tuple[bytes, int, tuple[Span, ...]]:
    """(PCM, sample rate, one span per word) of ``text`` in ``voice``; E202 when the engine fails. Each call
    is a ``speech synthesis`` trace span (the engines run in this process, not as subprocesses)."""
    attributes = {"reelcast.voice": voice.key, "reelcast.voice_engine": voice.engine}
    with tracing.span("speech synthesis", attributes=attributes):
        return _synthesize(ctx, text, voice, rate, pitch, data_path, after_sentence)


def _synthesize(
    ctx: StageContext,
    text: str,
    voice: voices.Voice,
    rate: int,
    pitch: int,
    data_path: str | None,
    after_sentence: Callable[[float], bool],
) -> tuple[bytes, int, tuple[Span, ...]]:
    try:
        if voice.piper is not None:
            speech = piper_tts.synthesize(text, voice.piper, rate=rate, after_sentence=after_sentence)
            return speech.pcm, speech.sample_rate, speech.words
        assert voice.espeak is not None
        spoken = espeak.synthesize(
            text, voice.espeak, rate=rate, pitch=pitch, data_path=data_path, should_stop=lambda: ctx.cancelled
        )
        return spoken.pcm, spoken.sample_rate, spoken.words
    except (espeak.EspeakError, piper_tts.PiperError) as error:
        raise ReelcastError(errors.TTS_FAILED, f"Speech synthesis failed: {error}") from error


def _announcement(voice: voices.Voice, pitch: int) -> str:
    engine = "Piper" if voice.engine == voices.PIPER else "espeak-ng"
    message = f"Generating narration with voice {voice.key} ({engine})"
    if voice.engine == voices.PIPER and pitch != DEFAULT_PITCH:
        # Piper has no pitch control; a silent default would look like a bug in the client's pitch.
        message += f"; pitch {pitch} has no effect on Piper voices (it moves espeak-ng voices only)"
    return message


def _silence(seconds: float, sample_rate: int) -> bytes:
    return bytes(round(seconds * sample_rate) * 2)


def _timed_words(
    text: str, spans: tuple[Span, ...], spoken_from: float, scene_start: float, scene_end: float
) -> list[WordTiming]:
    """The scene's words with their spans (seconds from ``spoken_from``, where the engine's audio starts
    after the scene's leading pause) made absolute in the whole narration, to the millisecond, and kept
    inside the scene (rounding alone could push a word a fraction of a millisecond past its edges)."""

    def absolute(seconds: float) -> float:
        return min(max(round(spoken_from + seconds, 3), scene_start), scene_end)

    return [
        {"text": word, "start": absolute(start), "end": absolute(end)}
        for word, (start, end) in zip(words_of(text), spans, strict=True)
    ]


def run(ctx: StageContext) -> dict[str, Any]:
    scenes = load_scenes(ctx)
    settings: VoiceSettings = ctx.settings if ctx.settings is not None else VoiceSettings()
    data_path = settings.espeak_data_path
    voice = resolve_voice(ctx.spec.voice.name, ctx.spec.brief.language, data_path)
    rate = speaking_rate(ctx.spec)
    pitch = ctx.spec.voice.pitch or DEFAULT_PITCH
    ctx.report(0.0, _announcement(voice, pitch))
    voice_dir = ctx.path("voice")
    voice_dir.mkdir(exist_ok=True)
    entries: list[NarrationScene] = []
    pcm_parts: list[bytes] = []
    sample_rate = 0
    start = 0.0
    for index, scene in enumerate(scenes):
        ctx.raise_if_cancelled()

        def after_sentence(spoken: float, index: int = index, scene_start: float = start) -> bool:
            # A long scene takes Piper a while: say how far it got (the stall watchdog hears it too), and
            # stop as soon as the narration passes its limit or the job is cancelled.
            ctx.report(
                index / (len(scenes) + 1), f"Narrating scene {index + 1} of {len(scenes)}: {spoken:.0f} s"
            )
            return not ctx.cancelled and scene_start + spoken <= MAX_NARRATION_SECONDS

        text = speakable(scene.narration)
        pcm, sample_rate, spans = _speak(ctx, text, voice, rate, pitch, data_path, after_sentence)
        ctx.raise_if_cancelled()
        lead = SCENE_PAUSE_SECONDS / 2 if index > 0 else 0.0
        tail = SCENE_PAUSE_SECONDS / 2 if index < len(scenes) - 1 else ENDING_SECONDS
        lead_bytes = _silence(lead, sample_rate)
        pcm = lead_bytes + pcm + _silence(tail, sample_rate)
        minimum_bytes = int(MIN_SCENE_SECONDS * sample_rate) * 2
        if len(pcm) < minimum_bytes:
            pcm += b"\0" * (minimum_bytes - len(pcm))
        relative = f"voice/scene-{index + 1:03d}.wav"
        _write_wav(ctx.path(relative), pcm, sample_rate)
        duration = wav_duration(ctx.path(relative))
        spoken_from = start + len(lead_bytes) / 2 / sample_rate
        words = _timed_words(scene.narration, spans, spoken_from, start, start + duration)
        entries.append({"wav": relative, "start": round(start, 6), "duration": duration, "words": words})
        pcm_parts.append(pcm)
        start += duration
        if start > MAX_NARRATION_SECONDS:
            # The estimate at creation counts words; numbers and long words can speak far longer.
            raise ReelcastError(
                errors.NARRATION_TOO_LONG,
                f"The narration reached {start:.0f} s after scene {index + 1} of {len(scenes)}; "
                f"the limit is {MAX_NARRATION_SECONDS:.0f} s.",
            )
        ctx.report((index + 1) / (len(scenes) + 1), f"Narrated scene {index + 1} of {len(scenes)}")
    _write_wav(ctx.path(NARRATION_WAV), b"".join(pcm_parts), sample_rate)
    total = wav_duration(ctx.path(NARRATION_WAV))
    document: NarrationArtifact = {
        "sample_rate": sample_rate,
        "audio": NARRATION_WAV,
        "duration": total,
        "voice": voice.key,
        "scenes": entries,
    }
    ctx.path(VOICE_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")
    ctx.report(1.0, f"Narration: {total:.1f} s")
    return {"narration": VOICE_FILE}


def load_narration(ctx: StageContext) -> NarrationArtifact:
    return read_narration(ctx)


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="voice",
            title="Voice",
            weight=20,
            order=200,
            run=run,
            settings=VoiceSettings,
            description=(
                "Speaks each scene's narration offline into one WAV per scene, with word timings: "
                "Piper for English, espeak-ng for other languages."
            ),
        )
    )
