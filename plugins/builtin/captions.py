"""Caption cues from the narration and its timing, in two styles, and their SRT and WebVTT forms.

Sentence cues: each scene's narration is split into cues of at most ``MAX_CUE_CHARS`` characters, at
sentence ends, a longer sentence into even parts, and the scene's measured audio time is shared among them
by length. A cue shorter than ``MIN_CUE_SECONDS`` joins a neighbour. The first cue of a scene starts exactly
when its audio starts and the last ends when it ends. The visuals stage burns these into frames.

Word cues (the default style): one to ``MAX_GROUP_WORDS`` words at a time (five for quick speech), from the
narration's word timings (``NarrationScene.words``). A cue breaks at phrase punctuation and never runs across
a sentence end; a phrase of more words is cut into balanced groups, and a phrase spoken in less than
``MIN_CUE_SECONDS`` joins its neighbour in the sentence. A cue starts when its first word is spoken and stays
until the next cue of its scene starts (or a moment after its last word). The render stage draws them with
libass (``ass.py``).

When a scene has no word timings (a voice stage that does not give them), they are estimated: the narration
is split at spaces and the scene's speech span (its audio without leading and trailing silence, measured on
its WAV) is shared among the words in proportion to their characters. The estimate drifts inside long
sentences, but every scene's first word starts with its speech and its last ends with it.

The sidecar subtitles (SRT, WebVTT) carry the same cues as the picture.
"""

from __future__ import annotations

import array
import dataclasses
import re
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.artifacts import NarrationScene, WordTiming

MAX_CUE_CHARS = 84
MAX_GROUP_WORDS = 4
# Quick speech says four short words in less than MIN_CUE_SECONDS: such a phrase may take a fifth word
# (within MAX_GROUP_CHARS) rather than flash by, since no cue may be shorter (issue 16's acceptance).
MAX_QUICK_GROUP_WORDS = 5
# Longer groups are split further: four long words do not fit two lines of a 9:16 frame.
MAX_GROUP_CHARS = 26
# How long a word cue stays after its last word when no other cue of the scene follows closely.
WORD_CUE_HOLD_SECONDS = 0.6
# No cue is shown for less (issue 16): shorter ones are merged with a neighbour in their sentence, and a
# cue that no merge can lengthen appears a moment before its first word (a lead-in).
MIN_CUE_SECONDS = 0.8
# The longest lead-in: a cue on screen this long before its first word is still read with the voice.
MAX_LEAD_IN_SECONDS = 0.25
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


def _cut_sentence(words: Sequence[str], limit: int) -> list[str]:
    """A sentence longer than ``limit`` in the fewest lines of at most ``limit`` characters, as even as
    possible and cut after phrase punctuation where one is near (so no short tail is left over)."""
    count = len(words)
    best: list[tuple[float, int]] = [(0.0, 0)] + [(float("inf"), 0)] * count
    for stop in range(1, count + 1):
        for first in range(stop - 1, -1, -1):
            chunk = " ".join(words[first:stop])
            if len(chunk) > limit and stop - first > 1:
                break
            at_phrase = stop < count and _ends_with(words[stop - 1], _PHRASE_MARKS)
            cost = limit**3 + len(chunk) ** 2 - (limit**2 / 8 if at_phrase else 0)
            if best[first][0] + cost < best[stop][0]:
                best[stop] = (best[first][0] + cost, first)
    chunks: list[str] = []
    stop = count
    while stop:
        first = best[stop][1]
        chunks.insert(0, " ".join(words[first:stop]))
        stop = first
    return chunks


def split_text(text: str, limit: int = MAX_CUE_CHARS) -> list[str]:
    """Splits text into chunks of at most ``limit`` characters at sentence ends, then evenly at spaces."""
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(_one_line(text)):
        words: list[str] = []
        for word in sentence.split(" "):
            while len(word) > limit:  # a very long "word" (a URL, a run of emoji) is cut hard
                words.append(word[:limit])
                word = word[limit:]
            if word:
                words.append(word)
        if words:
            chunks.extend(_cut_sentence(words, limit))
    # Merge short neighbours so cues are not flashed for a fraction of a second.
    merged: list[str] = []
    for chunk in chunks:
        if merged and len(merged[-1]) + 1 + len(chunk) <= limit // 2:
            merged[-1] = f"{merged[-1]} {chunk}"
        else:
            merged.append(chunk)
    return merged or [""]


def _share(chunks: Sequence[str], start: float, duration: float) -> list[tuple[float, float]]:
    """(start, end) of each chunk: ``duration`` shared by the chunks' lengths."""
    weights = [max(1, len(chunk)) for chunk in chunks]
    total = sum(weights)
    bounds = [start + duration * sum(weights[:index]) / total for index in range(len(chunks))]
    return list(zip(bounds, [*bounds[1:], start + duration], strict=True))


def scene_cues(scene: int, text: str, start: float, duration: float, limit: int = MAX_CUE_CHARS) -> list[Cue]:
    """The cues of one scene, sharing ``duration`` by the chunks' lengths. A cue shorter than
    MIN_CUE_SECONDS joins a neighbour when the two fit one cue, the rest of its sentence first."""
    chunks = split_text(text, limit)
    while len(chunks) > 1:
        times = _share(chunks, start, duration)
        short = [i for i, (begin, end) in enumerate(times) if end - begin < MIN_CUE_SECONDS]
        joins = [
            (not _ends_with(chunks[left], _SENTENCE_MARKS), -len(chunks[left] + chunks[left + 1]), left)
            for index in short
            for left in (index - 1, index)
            if 0 <= left < len(chunks) - 1 and len(chunks[left]) + 1 + len(chunks[left + 1]) <= limit
        ]
        if not joins:
            break
        left = max(joins)[2]
        chunks[left : left + 2] = [f"{chunks[left]} {chunks[left + 1]}"]
    return [
        Cue(scene, begin, end, chunk)
        for chunk, (begin, end) in zip(chunks, _share(chunks, start, duration), strict=True)
    ]


def build_cues(narrations: Sequence[str], starts: Sequence[float], durations: Sequence[float]) -> list[Cue]:
    cues: list[Cue] = []
    for scene, (text, start, duration) in enumerate(zip(narrations, starts, durations, strict=True)):
        cues.extend(scene_cues(scene, text, start, duration))
    return cues


def clock_time(seconds: float, *, digits: int, decimal: str, hour_width: int = 2) -> str:
    """``H:MM:SS`` and a fraction of ``digits`` digits after ``decimal``: the cue times of SRT (``,`` and
    milliseconds), WebVTT (``.`` and milliseconds) and ASS (``.``, centiseconds, unpadded hours)."""
    scale = 10**digits
    ticks = max(0, round(seconds * scale))
    whole, fraction = divmod(ticks, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:0{hour_width}d}:{minutes:02d}:{secs:02d}{decimal}{fraction:0{digits}d}"


def srt_time(seconds: float) -> str:
    return clock_time(seconds, digits=3, decimal=",")


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
    return clock_time(seconds, digits=3, decimal=".")


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


def _cue_end(start: float, last_end: float, next_start: float | None, scene_end: float) -> float:
    """When a word cue from ``start`` whose last word ends at ``last_end`` goes: at the next cue's start
    after a short pause (no flicker), a moment after its last word before a long one, and never before
    MIN_CUE_SECONDS when the pause (or the scene) leaves room for it."""
    end = min(scene_end, last_end + WORD_CUE_HOLD_SECONDS)
    if next_start is not None:
        end = next_start if next_start - last_end < WORD_CUE_HOLD_SECONDS else min(end, next_start)
    limit = scene_end if next_start is None else min(next_start, scene_end)
    return max(end, last_end, min(start + MIN_CUE_SECONDS, limit))


def _sentences(words: Sequence[WordTiming]) -> list[list[WordTiming]]:
    sentences: list[list[WordTiming]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if _ends_with(word["text"], _SENTENCE_MARKS):
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


def _fits_a_cue(group: Sequence[WordTiming]) -> bool:
    # One word always fits (ass.py draws a long one smaller); a group must fit two lines of a 9:16 frame.
    return len(group) == 1 or (
        len(group) <= MAX_QUICK_GROUP_WORDS and len(" ".join(w["text"] for w in group)) <= MAX_GROUP_CHARS
    )


def _group_sentence(
    sentence: Sequence[WordTiming], following_start: float | None, scene_end: float
) -> list[list[WordTiming]]:
    """One sentence's words in cues, the best cut by these costs, most important first: the fewest cues
    shorter than MIN_CUE_SECONDS and the least time missing from them (a short phrase joins its
    neighbour), cues break at phrase punctuation, the fewest cues, then cues of even length (five words
    are 3 + 2, not 4 + 1). Quick speech can say four short words in less than MIN_CUE_SECONDS: such a
    cue takes a fifth word (MAX_QUICK_GROUP_WORDS) when that spares it, never crossing its sentence's end;
    what is still short then gets a lead-in (_with_lead_ins)."""
    count = len(sentence)
    best: list[tuple[float, int]] = [(0.0, 0)] + [(float("inf"), 0)] * count
    for stop in range(1, count + 1):
        # The shortest last group first: of two equal cuts, the earlier cues take the extra word.
        for first in range(stop - 1, max(0, stop - MAX_QUICK_GROUP_WORDS) - 1, -1):
            group = sentence[first:stop]
            if not _fits_a_cue(group):
                continue
            next_start = sentence[stop]["start"] if stop < count else following_start
            start = group[0]["start"]
            seconds = _cue_end(start, group[-1]["end"], next_start, scene_end) - start
            crossed = sum(_ends_with(word["text"], _PHRASE_MARKS) for word in group[:-1])
            shortfall = max(0.0, MIN_CUE_SECONDS - seconds)
            # A fifth word only where it spares a cue too short to read (it costs more than any cut).
            quick = 500 if len(group) > MAX_GROUP_WORDS else 0
            cost = (
                (1000 + 1000 * shortfall if shortfall else 0)
                + quick
                + 10 * crossed
                + 1
                + 0.01 * len(group) ** 2
            )
            if best[first][0] + cost < best[stop][0] - 1e-9:
                best[stop] = (best[first][0] + cost, first)
    groups: list[list[WordTiming]] = []
    stop = count
    while stop:
        first = best[stop][1]
        groups.insert(0, list(sentence[first:stop]))
        stop = first
    return groups


def group_words(words: Sequence[WordTiming], scene_end: float = float("inf")) -> list[list[WordTiming]]:
    """Words in cues of 1 to MAX_GROUP_WORDS (MAX_QUICK_GROUP_WORDS for quick speech): no group crosses a
    sentence end, groups break at phrase punctuation, and a phrase too short to read joins its neighbour in
    the sentence (_group_sentence)."""
    sentences = _sentences(words)
    groups: list[list[WordTiming]] = []
    for index, sentence in enumerate(sentences):
        following = sentences[index + 1][0]["start"] if index + 1 < len(sentences) else None
        groups.extend(_group_sentence(sentence, following, scene_end))
    return groups


def word_cues(
    scene: int, words: Sequence[WordTiming], scene_end: float, scene_start: float = 0.0
) -> list[Cue]:
    """The word cues of one scene: each from its first word's start until the next cue (or a short hold
    after its last word, within the scene); see _cue_end."""
    groups = group_words(words, scene_end)
    cues: list[Cue] = []
    for index, group in enumerate(groups):
        next_start = groups[index + 1][0]["start"] if index + 1 < len(groups) else None
        end = _cue_end(group[0]["start"], group[-1]["end"], next_start, scene_end)
        text = " ".join(word["text"] for word in group)
        cues.append(Cue(scene, group[0]["start"], end, text, tuple(group)))
    return _with_lead_ins(cues, scene_start)


def _with_lead_ins(cues: list[Cue], scene_start: float) -> list[Cue]:
    """Cues still shorter than MIN_CUE_SECONDS (four quick words) start up to MAX_LEAD_IN_SECONDS before
    their first word: from the pause before them, then from the cue before them while it keeps
    MIN_CUE_SECONDS (it leaves a moment before its last word ends, as subtitles do)."""
    for index, cue in enumerate(cues):
        missing = min(MIN_CUE_SECONDS - (cue.end - cue.start), MAX_LEAD_IN_SECONDS)
        if missing <= 0:
            continue
        previous = cues[index - 1] if index else None
        free_from = previous.end if previous is not None else scene_start
        start = max(cue.start - missing, min(free_from, cue.start))
        if previous is not None and start > cue.start - missing:
            spare = max(0.0, previous.end - previous.start - MIN_CUE_SECONDS)
            start = max(cue.start - missing, start - spare)
            cues[index - 1] = dataclasses.replace(previous, end=min(previous.end, start))
        cues[index] = dataclasses.replace(cue, start=start)
    return cues


def build_word_cues(
    narrations: Sequence[str], timing: Sequence[NarrationScene], wav_path: Callable[[str], Path]
) -> list[Cue]:
    cues: list[Cue] = []
    for scene, (text, entry) in enumerate(zip(narrations, timing, strict=True)):
        scene_end = float(entry["start"]) + float(entry["duration"])
        cues.extend(word_cues(scene, scene_words(entry, text, wav_path), scene_end, float(entry["start"])))
    return cues
