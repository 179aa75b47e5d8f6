"""The voices the built-in voice stage speaks with, from two engines:

- **Piper** (``piper``): the neural voices that installed packages ship, today joe (``en-us-joe``). It is
  the default voice of every English brief.
- **espeak-ng** (``espeak-ng``): a formant voice for each of its languages (``en-us``, ``en-gb``, ``de``,
  ``fr``...): the default for every other language, and English when a brief names an espeak key.

A voice's key is what ``VoiceSpec.name`` takes. Its quality is Piper's tier (``x_low``, ``low``, ``medium``,
``high``); espeak-ng's voices are ``low``: clear, and robotic.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelcast.plugins.builtin import espeak, piper_tts

PIPER = "piper"
ESPEAK = "espeak-ng"
ESPEAK_QUALITY = "low"


@dataclass(frozen=True)
class Voice:
    """One voice the stage can speak with; ``engine`` is :data:`PIPER` or :data:`ESPEAK`."""

    key: str
    name: str
    languages: tuple[str, ...]
    engine: str
    quality: str
    piper: piper_tts.PiperVoiceInfo | None = None
    espeak: espeak.Voice | None = None


def _from_piper(voice: piper_tts.PiperVoiceInfo) -> Voice:
    return Voice(voice.key, voice.name, voice.languages, PIPER, voice.quality, piper=voice)


def _from_espeak(voice: espeak.Voice) -> Voice:
    return Voice(voice.key, voice.name, voice.languages, ESPEAK, ESPEAK_QUALITY, espeak=voice)


def available_voices(espeak_data_path: str | None = None) -> list[Voice]:
    """Every voice of both engines, sorted by key (espeak's from its data at ``espeak_data_path``)."""
    voices = [_from_piper(v) for v in piper_tts.installed_voices()]
    voices += [_from_espeak(v) for v in espeak.available_voices(espeak_data_path)]
    return sorted(voices, key=lambda voice: (voice.key, voice.engine))


def default_voice_key(language: str) -> str | None:
    """The key of the voice that speaks ``language`` when no voice is named: Piper's for English, None
    (espeak's voice for the language) otherwise."""
    if language.strip().lower().replace("_", "-").split("-", 1)[0] != "en":
        return None
    return next((v.key for v in piper_tts.installed_voices() if "en" in v.languages), None)


def engine_of(name: str, language: str) -> str:
    """The engine that will speak a spec's voice ``name`` in ``language``, without loading espeak's voice
    list: :data:`PIPER` for a Piper key or an unnamed English voice, :data:`ESPEAK` otherwise. The script
    stage paces its sentences by it."""
    wanted = name or default_voice_key(language or "en") or ""
    return PIPER if piper_tts.find_voice(wanted) is not None else ESPEAK


def find_voice(name: str, language: str, espeak_data_path: str | None = None) -> Voice | None:
    """The voice named ``name`` (a Piper key, else any espeak key, tag or name), else the default voice of
    ``language`` (``en`` when empty); None when there is no such voice."""
    wanted = name or default_voice_key(language or "en") or language or "en"
    piper_voice = piper_tts.find_voice(wanted)
    if piper_voice is not None:
        return _from_piper(piper_voice)
    espeak_voice = espeak.find_voice(wanted, espeak_data_path)
    return _from_espeak(espeak_voice) if espeak_voice is not None else None
