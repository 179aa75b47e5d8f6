"""Caption cues from the narration and its timing, in two styles, and their SRT and WebVTT forms.

Sentence cues: each scene's narration is split into cues of at most ``MAX_CUE_CHARS`` characters, at
sentence ends where possible, and the scene's measured audio time is shared among them by length. The first
cue of a scene starts exactly when its audio starts and the last ends when it ends. The visuals stage burns
these into frames.

Word cues (the default style): one to ``MAX_GROUP_WORDS`` words at a time, from the narration's word timings
(``NarrationScene.words``). A cue breaks at phrase punctuation and never runs across a sentence end; a phrase
of more words is cut into balanced groups. A cue starts when its first word is spoken and stays until the
next cue of its scene starts (or a moment after its last word). The render stage draws them with libass
(``ass.py``).

When a scene has no word timings (a voice stage that does not give them), they are estimated: the narration
is split at spaces and the scene's speech span (its audio without leading and trailing silence, measured on
its WAV) is shared among the words in proportion to their characters. The estimate drifts inside long
sentences, but every scene's first word starts with its speech and its last ends with it.

The sidecar subtitles (SRT, WebVTT) carry the same cues as the picture.
"""

from __future__ import annotations

import array
import re
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.artifacts import NarrationScene, WordTiming

MAX_CUE_CHARS = 84
MAX_GROUP_WORDS = 4
# Longer groups are split further: four long words do not fit two lines of a 9:16 frame.
MAX_GROUP_CHARS = 26
# How long a word cue stays after its last word when no other cue of the scene follows closely.
WORD_CUE_HOLD_SECONDS = 0.6
# A sample below this fraction of full scale is silence, for the speech span of an estimate.
SILENCE_LEVEL = 0.01
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
_CLOSERS = "\"'”’»)]}"
_SENTENCE_MARKS = ".!?…。！？"
_PHRASE_MARKS = ",;:—–、，；："


@dataclass(frozen=True)
class Cue:
    scene: int
    start: float
    end: float
    text: str
    # The cue's words with their times, for karaoke (word cues only; empty for sentence cues).
    words: tuple[WordTiming, ...] = ()


def uses_word_cues(render: job_pb2.RenderSpec) -> bool:
    """Whether the captions show a few words at a time (the default style) rather than sentences."""
    return render.caption_style != job_pb2.CAPTION_STYLE_SENTENCES


def burns_sentence_bands(render: job_pb2.RenderSpec) -> bool:
    """Whether the visuals stage draws sentence cues into the frames (burned sentence captions); word
    cues are drawn by the render stage instead."""
    soft = render.caption_mode == job_pb2.CAPTION_MODE_SOFT
    return render.captions and not soft and not uses_word_cues(render)


def _one_line(text: str) -> str:
    # "-->" inside a cue would read as a timing line to some SRT parsers.
    return " ".join(text.split()).replace("-->", "->")


def split_text(text: str, limit: int = MAX_CUE_CHARS) -> list[str]:
    """Splits text into chunks of at most ``limit`` characters at sentence ends, then at spaces."""
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(_one_line(text)):
        current = ""
        for word in sentence.split(" "):
            while len(word) > limit:  # a very long "word" (a URL, a run of emoji) is cut hard
                if current:
                    chunks.append(current)
                    current = ""
                chunks.append(word[:limit])
                word = word[limit:]
            candidate = f"{current} {word}".strip()
            if len(candidate) > limit and current:
                chunks.append(current)
                current = word
            else:
                current = candidate
        if current:
            chunks.append(current)
    # Merge short neighbours so cues are not flashed for a fraction of a second.
    merged: list[str] = []
    for chunk in chunks:
        if merged and len(merged[-1]) + 1 + len(chunk) <= limit // 2:
            merged[-1] = f"{merged[-1]} {chunk}"
        else:
            merged.append(chunk)
    return merged or [""]


def scene_cues(scene: int, text: str, start: float, duration: float) -> list[Cue]:
    """The cues of one scene, sharing ``duration`` by the chunks' lengths."""
    chunks = split_text(text)
    weights = [max(1, len(chunk)) for chunk in chunks]
    total = sum(weights)
    cues: list[Cue] = []
    elapsed = 0
    for index, (chunk, weight) in enumerate(zip(chunks, weights, strict=True)):
        cue_start = start + duration * elapsed / total
        elapsed += weight
        cue_end = start + duration if index == len(chunks) - 1 else start + duration * elapsed / total
        cues.append(Cue(scene, cue_start, cue_end, chunk))
    return cues


def build_cues(narrations: Sequence[str], starts: Sequence[float], durations: Sequence[float]) -> list[Cue]:
    cues: list[Cue] = []
    for scene, (text, start, duration) in enumerate(zip(narrations, starts, durations, strict=True)):
        cues.extend(scene_cues(scene, text, start, duration))
    return cues


def srt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{cue.text or ' '}\n"
        for number, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each block; the inverse of :func:`to_srt` (used by tests and tools)."""
    entries: list[tuple[float, float, str]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if len(lines) < 2 or "-->" not in lines[1]:
            continue
        start_text, end_text = (part.strip() for part in lines[1].split("-->"))
        entries.append((_srt_seconds(start_text), _srt_seconds(end_text), "\n".join(lines[2:])))
    return entries


def _srt_seconds(stamp: str) -> float:
    clock, millis = stamp.split(",")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return hours * 3600 + minutes * 60 + seconds + int(millis) / 1000


def webvtt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _webvtt_text(text: str) -> str:
    # Cue text is markup in WebVTT: & and < start entities and tags.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{webvtt_time(cue.start)} --> {webvtt_time(cue.end)}\n{_webvtt_text(cue.text) or ' '}\n"
        for number, cue in enumerate(cues, start=1)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


# -- word cues ---------------------------------------------------------------------------------------------


def speech_span(wav: Path, start: float, duration: float) -> tuple[float, float]:
    """Where speech is heard in a scene's WAV (16-bit PCM), as absolute times; the whole scene when the
    file cannot be read or is silent."""
    try:
        with wave.open(str(wav), "rb") as reader:
            if reader.getsampwidth() != 2 or reader.getnframes() == 0:
                return start, start + duration
            rate, channels = reader.getframerate(), reader.getnchannels()
            samples = array.array("h", reader.readframes(reader.getnframes()))
    except (OSError, EOFError, wave.Error):
        return start, start + duration
    level = SILENCE_LEVEL * 32768
    first = next((i for i, sample in enumerate(samples) if abs(sample) > level), None)
    if first is None:
        return start, start + duration
    last = next(i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > level)
    speech_start = start + first // channels / rate
    speech_end = start + (last // channels + 1) / rate
    return speech_start, min(start + duration, speech_end)


def estimate_words(text: str, start: float, end: float) -> list[WordTiming]:
    """The words of ``text`` spread over ``start``..``end`` in proportion to their characters."""
    tokens = _one_line(text).split()
    total = sum(len(token) for token in tokens)
    words: list[WordTiming] = []
    elapsed = 0
    for token in tokens:
        word_start = start + (end - start) * elapsed / total
        elapsed += len(token)
        words.append({"text": token, "start": word_start, "end": start + (end - start) * elapsed / total})
    return words


def scene_words(scene: NarrationScene, narration: str, wav_path: Callable[[str], Path]) -> list[WordTiming]:
    """The scene's word timings from the voice stage, else an estimate (see the module docstring)."""
    given = [word for word in scene.get("words") or [] if word["text"].strip()]
    if given:
        return [{"text": _one_line(w["text"]), "start": w["start"], "end": w["end"]} for w in given]
    span = speech_span(wav_path(scene["wav"]), float(scene["start"]), float(scene["duration"]))
    return estimate_words(narration, *span)


def _ends_with(word: str, marks: str) -> bool:
    return word.rstrip(_CLOSERS)[-1:] in marks if word.rstrip(_CLOSERS) else False


def _balanced(phrase: list[WordTiming]) -> list[list[WordTiming]]:
    """A phrase cut into the fewest groups of at most MAX_GROUP_WORDS words and MAX_GROUP_CHARS
    characters, the groups as even as possible (five words are 3 + 2, not 4 + 1)."""
    for count in range(-(-len(phrase) // MAX_GROUP_WORDS), len(phrase) + 1):
        size, extra = divmod(len(phrase), count)
        groups, index = [], 0
        for number in range(count):
            length = size + (1 if number < extra else 0)
            groups.append(phrase[index : index + length])
            index += length
        if all(len(" ".join(w["text"] for w in group)) <= MAX_GROUP_CHARS for group in groups):
            return groups
    return [[word] for word in phrase]


def group_words(words: Sequence[WordTiming]) -> list[list[WordTiming]]:
    """Words in groups of 1 to MAX_GROUP_WORDS: phrases end at punctuation, and no group crosses a
    sentence end."""
    phrases: list[list[WordTiming]] = [[]]
    for word in words:
        phrases[-1].append(word)
        if _ends_with(word["text"], _SENTENCE_MARKS + _PHRASE_MARKS):
            phrases.append([])
    return [group for phrase in phrases if phrase for group in _balanced(phrase)]


def word_cues(scene: int, words: Sequence[WordTiming], scene_end: float) -> list[Cue]:
    """The word cues of one scene: each from its first word's start until the next cue (or a short hold
    after its last word, within the scene)."""
    groups = group_words(words)
    cues: list[Cue] = []
    for index, group in enumerate(groups):
        start, last_end = group[0]["start"], group[-1]["end"]
        end = min(scene_end, last_end + WORD_CUE_HOLD_SECONDS)
        if index + 1 < len(groups):
            next_start = groups[index + 1][0]["start"]
            # A short pause keeps the cue up (no flicker); a long one clears the screen before the next.
            end = next_start if next_start - last_end < WORD_CUE_HOLD_SECONDS else min(end, next_start)
        end = max(end, last_end)
        text = " ".join(word["text"] for word in group)
        cues.append(Cue(scene, start, end, text, tuple(group)))
    return cues


def build_word_cues(
    narrations: Sequence[str], timing: Sequence[NarrationScene], wav_path: Callable[[str], Path]
) -> list[Cue]:
    cues: list[Cue] = []
    for scene, (text, entry) in enumerate(zip(narrations, timing, strict=True)):
        scene_end = float(entry["start"]) + float(entry["duration"])
        cues.extend(word_cues(scene, scene_words(entry, text, wav_path), scene_end))
    return cues
