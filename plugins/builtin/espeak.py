"""A small ctypes binding of espeak-ng, loaded from ``espeakng-loader`` (no system package).

espeak keeps its state (voice, rate, the synthesis callback) in process-global variables, so every call
takes :data:`_LOCK`. Synthesis runs in synchronous mode: ``espeak_Synth`` returns once the whole text has
been passed to our callback, which collects the 16-bit mono samples and the word and clause events that
time the words (see word_timings.py).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import espeakng_loader

from reelcast.plugins.builtin.word_timings import Span, spans_from_word_starts

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_POS_CHARACTER = 1
# espeak_EVENT_TYPE: the end of the event list, where a word starts, where a clause ends.
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5

_LOCK = threading.Lock()


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h). ``text_position`` counts characters from 1; ``audio_position`` is in ms
    from the start of the synthesis; ``id`` is a union of an int, a pointer and 8 characters."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """An installed espeak voice. ``languages`` are lower-case tags such as ``en-us``."""

    name: str
    identifier: str
    languages: tuple[str, ...]

    @property
    def key(self) -> str:
        """The name users pass: the voice's first language tag (``en-us``), else its identifier's tail."""
        return self.languages[0] if self.languages else self.identifier.rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class Speech:
    """Synthesized audio: signed 16-bit little-endian mono PCM, and when each word of the text is spoken
    (one span per whitespace-separated word, seconds from the start of ``pcm``)."""

    pcm: bytes
    sample_rate: int
    words: tuple[Span, ...] = ()

    @property
    def duration_seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesize."""


class _Engine:
    def __init__(self, data_path: str | None) -> None:
        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as error:
            raise EspeakError(f"cannot load libespeak-ng: {error}") from error
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        path = (data_path or espeakng_loader.get_data_path()).encode()
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed for data path {path.decode()!r}")
        self._chunks: list[bytes] = []
        self._word_starts: list[tuple[int, float]] = []
        self._clause_ends: list[float] = []
        self._should_stop: Callable[[], bool] = lambda: False
        # Keep a reference: ctypes would free the trampoline while espeak still holds it.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._list_voices()

    def _collect(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]
    ) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        index = 0
        while events and events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self._word_starts.append((event.text_position - 1, event.audio_position / 1000))
            elif event.type == _EVENT_END:
                self._clause_ends.append(event.audio_position / 1000)
            index += 1
        return 1 if self._should_stop() else 0

    def _list_voices(self) -> list[Voice]:
        voices: list[Voice] = []
        array = self.lib.espeak_ListVoices(None)
        index = 0
        while array[index]:
            raw = array[index].contents
            voices.append(
                Voice(
                    name=(raw.name or b"").decode(errors="replace"),
                    identifier=(raw.identifier or b"").decode(errors="replace"),
                    languages=_parse_languages(raw.languages),
                )
            )
            index += 1
        return voices

    def synthesize(
        self, text: str, voice: Voice, rate: int, pitch: int, should_stop: Callable[[], bool]
    ) -> Speech:
        if self.lib.espeak_SetVoiceByName(voice.identifier.encode()) != _EE_OK:
            raise EspeakError(f"espeak rejected voice {voice.identifier!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        encoded = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        self._chunks, self._word_starts, self._clause_ends = [], [], []
        self._should_stop = should_stop
        try:
            status = self.lib.espeak_Synth(
                buffer, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self.lib.espeak_Synchronize()
        finally:
            self._should_stop = lambda: False
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth returned {status}")
        pcm = b"".join(self._chunks)
        words = spans_from_word_starts(text, self._word_starts, self._clause_ends, pcm, self.sample_rate)
        return Speech(pcm, self.sample_rate, tuple(words))


def _parse_languages(address: int | None) -> tuple[str, ...]:
    """espeak's ``languages`` field: (priority byte, NUL-terminated name) pairs, ended by a zero byte."""
    if not address:
        return ()
    languages: list[str] = []
    offset = 0
    while ctypes.string_at(address + offset, 1) != b"\0":
        name = ctypes.string_at(address + offset + 1)
        languages.append(name.decode(errors="replace").lower())
        offset += 1 + len(name) + 1
    return tuple(languages)


_engine: _Engine | None = None
_engine_path: str | None = None


def _get_engine(data_path: str | None) -> _Engine:
    global _engine, _engine_path
    if _engine is None or _engine_path != data_path:
        _engine = _Engine(data_path)
        _engine_path = data_path
    return _engine


def available_voices(data_path: str | None = None) -> list[Voice]:
    """Every installed voice, sorted by :attr:`Voice.key`."""
    with _LOCK:
        return sorted(_get_engine(data_path).voices, key=lambda voice: voice.key)


def find_voice(name: str, data_path: str | None = None) -> Voice | None:
    """The voice whose key, language tag, identifier or display name equals ``name`` (case-insensitive).

    A language tag with a region (``en-GB``) falls back to the bare language (``en``)."""
    wanted = name.strip().lower().replace("_", "-")
    voices = available_voices(data_path)
    for voice in voices:
        if wanted in (voice.key, voice.identifier.lower(), voice.name.lower()):
            return voice
    for candidate in (wanted, wanted.split("-", 1)[0]):
        speakers = [voice for voice in voices if candidate in voice.languages]
        # Several voices speak "en"; the one whose identifier is the bare tag (gmw/en) is espeak's default.
        speakers.sort(key=lambda voice: voice.identifier.rsplit("/", 1)[-1].lower() != candidate)
        if speakers:
            return speakers[0]
    return None


def synthesize(
    text: str,
    voice: Voice,
    *,
    rate: int,
    pitch: int,
    data_path: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Speech:
    """Speaks ``text`` (plain text, never SSML) with ``voice`` at ``rate`` wpm and ``pitch`` 0-100."""
    with _LOCK:
        return _get_engine(data_path).synthesize(text, voice, rate, pitch, should_stop)


def default_data_path() -> Path:
    return Path(espeakng_loader.get_data_path())
