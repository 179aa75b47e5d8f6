"""Caption cues from the narration and its measured timing, and their SRT form.

Each scene's narration is split into cues of at most ``MAX_CUE_CHARS`` characters, at sentence ends where
possible, and the scene's measured audio time is shared among them by length. The first cue of a scene
starts exactly when its audio starts and the last ends when it ends, so the captions follow the voice.
The visuals stage burns the same cues into frames that the render stage writes into the SRT sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_CUE_CHARS = 84
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")


@dataclass(frozen=True)
class Cue:
    scene: int
    start: float
    end: float
    text: str


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
