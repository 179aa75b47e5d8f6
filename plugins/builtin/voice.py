"""The built-in voice stage: real speech from espeak-ng, one WAV per scene, durations measured.

The stage stops with E203 as soon as the measured narration passes ``MAX_NARRATION_SECONDS``, whatever
the script's estimate at creation said.

Each scene's WAV is padded with silence to at least ``MIN_SCENE_SECONDS`` (a scene of only emoji may speak
nothing at all). The scene WAVs are also joined into ``voice/narration.wav``, the render's audio track, so
that the audio's length is exactly the sum of the scenes'.

Artifact: ``narration`` -> ``voice.json`` (``{"sample_rate", "audio", "duration", "voice",
"scenes": [{"wav", "start", "duration"}]}``, times in seconds, paths relative to the work dir).
"""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.validation import MAX_NARRATION_SECONDS
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import NarrationArtifact, NarrationScene, read_narration
from reelcast.plugins.builtin import espeak
from reelcast.plugins.builtin.script import load_scenes, speaking_rate

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


def resolve_voice(name: str, language: str, data_path: str | None) -> espeak.Voice:
    """The voice named in the spec, else the language's default voice; E201 lists the choices."""
    wanted = name or language or "en"
    voice = espeak.find_voice(wanted, data_path)
    if voice is None:
        keys = sorted({candidate.key for candidate in espeak.available_voices(data_path)})
        raise ReelcastError(
            errors.VOICE_UNKNOWN,
            f"Voice {wanted!r} is not installed. Available voices: {', '.join(keys)}.",
        )
    return voice


def speakable(text: str) -> str:
    """Narration as espeak should read it: one line (newlines become sentence pauses)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ". ".join(line.rstrip(".") if not line.endswith((".", "!", "?")) else line for line in lines)


def run(ctx: StageContext) -> dict[str, Any]:
    scenes = load_scenes(ctx)
    settings: VoiceSettings = ctx.settings if ctx.settings is not None else VoiceSettings()
    data_path = settings.espeak_data_path
    voice = resolve_voice(ctx.spec.voice.name, ctx.spec.brief.language, data_path)
    rate = speaking_rate(ctx.spec)
    pitch = ctx.spec.voice.pitch or 50
    ctx.report(0.0, f"Generating narration with voice {voice.key}")
    voice_dir = ctx.path("voice")
    voice_dir.mkdir(exist_ok=True)
    entries: list[NarrationScene] = []
    pcm_parts: list[bytes] = []
    sample_rate = 0
    start = 0.0
    for index, scene in enumerate(scenes):
        ctx.raise_if_cancelled()
        try:
            speech = espeak.synthesize(
                speakable(scene.narration),
                voice,
                rate=rate,
                pitch=pitch,
                data_path=data_path,
                should_stop=lambda: ctx.cancelled,
            )
        except espeak.EspeakError as error:
            raise ReelcastError(errors.TTS_FAILED, f"Speech synthesis failed: {error}") from error
        ctx.raise_if_cancelled()
        sample_rate = speech.sample_rate
        pcm = speech.pcm
        minimum_bytes = int(MIN_SCENE_SECONDS * sample_rate) * 2
        if len(pcm) < minimum_bytes:
            pcm += b"\0" * (minimum_bytes - len(pcm))
        relative = f"voice/scene-{index + 1:03d}.wav"
        _write_wav(ctx.path(relative), pcm, sample_rate)
        duration = wav_duration(ctx.path(relative))
        entries.append({"wav": relative, "start": round(start, 6), "duration": duration})
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
            description="Speaks each scene's narration with espeak-ng (offline) into one WAV per scene.",
        )
    )
