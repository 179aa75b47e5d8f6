"""When each word of a narration is spoken: the engines' timing mapped onto the script's own words.

The words are the narration split on whitespace, punctuation attached, so that captions show them as
written. The engines report something else:

- espeak-ng sends a word event where each word it speaks starts, pointing into the text. It speaks "1990"
  as two words ("nineteen hundred", "ninety") and "of the" as one, and puts some events one word early.
- Piper says how many samples each phoneme lasts. Its phonemes come from espeak's phonemizer run on
  whole sentences, which joins and splits words the same way, and says "e.g." as "for example".

So espeak's events are matched to words by their text position, and Piper's phonemes by aligning them
with each word's own phonemes (spoken alone) as sequences. A word the engine says nothing for (an emoji
Piper skips, a dash) takes the silence between its neighbours. Every function returns one ``(start,
end)`` span per word, in seconds from the start of the text's audio, in order, and never overlapping.
"""

from __future__ import annotations

import array
import difflib
from collections.abc import Sequence

Span = tuple[float, float]
# A 10 ms frame whose samples all stay below this (1 % of full scale) is silence.
_SILENCE_LEVEL = 330
_FRAME_SECONDS = 0.01


def words_of(text: str) -> list[str]:
    """The words of a narration as captions show them: whitespace-separated, punctuation attached."""
    return text.split()


def _word_offsets(text: str) -> list[tuple[int, int]]:
    """Each word's (first, last + 1) character offset in ``text``."""
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in text.split():
        start = text.index(word, position)
        offsets.append((start, start + len(word)))
        position = start + len(word)
    return offsets


def _weight(word: str) -> int:
    """How much of a shared span a word takes: its letters and digits (punctuation takes none)."""
    return sum(1 for character in word if character.isalnum())


def spans_from_word_starts(
    text: str, starts: Sequence[tuple[int, float]], clause_ends: Sequence[float], pcm: bytes, sample_rate: int
) -> list[Span]:
    """Spans from espeak's word events: ``starts`` are (character offset in ``text``, seconds), in the
    order spoken; ``clause_ends`` are the times its clauses end. espeak reports no word's end, and a
    clause ends after its pause, so each word ends where the next starts (or its clause ends), less the
    silence at its end, measured in ``pcm`` (16-bit mono)."""
    samples = array.array("h", pcm)
    duration = len(samples) / sample_rate
    offsets = _word_offsets(text)
    count = len(offsets)
    if count == 0:
        return []

    def word_at(character: int) -> int:
        for index, (_, end) in enumerate(offsets):
            if character < end:
                return index
        return count - 1

    anchored: dict[int, float] = {}
    last = -1
    for position, (character, seconds) in enumerate(starts):
        index = word_at(character)
        if index <= last:
            # An event that points at a word already started belongs to the next word, unless the next
            # event is that word's own (the second half of a number spoken as two words).
            following = word_at(starts[position + 1][0]) if position + 1 < len(starts) else count
            if last + 1 >= following:
                continue
            index = last + 1
        anchored[index] = seconds
        last = index

    spans: list[Span | None] = [None] * count
    anchors = sorted(anchored)
    for position, index in enumerate(anchors):
        start = anchored[index]
        next_index = anchors[position + 1] if position + 1 < len(anchors) else count
        end = anchored[next_index] if next_index < count else duration
        # A word ends where its clause does when the next word starts after the pause.
        end = min([end, *(clause for clause in clause_ends if start < clause <= end)])
        # Words between two events were spoken inside the first one's span ("of the"): share it.
        group = list(range(index, next_index))
        weights = [_weight(text[first:last]) for first, last in (offsets[i] for i in group)]
        _share(spans, group, weights, start, _speech_end(samples, sample_rate, start, end))
    return settle(spans, duration)


def spans_from_phonemes(
    word_phonemes: Sequence[str], spoken: Sequence[tuple[str, float, float]], duration: float
) -> list[Span]:
    """Spans from Piper's alignments: ``word_phonemes`` is each word's phonemes spoken alone (no spaces or
    punctuation), ``spoken`` each phoneme Piper spoke with its (start, end) in seconds, in order."""
    expected: list[str] = []
    bounds: list[tuple[int, int]] = []
    for phonemes in word_phonemes:
        bounds.append((len(expected), len(expected) + len(phonemes)))
        expected.extend(phonemes)
    said = [phoneme for phoneme, _, _ in spoken]
    # Where each expected phoneme landed in what was said; replaced runs are spread evenly.
    landed = [0] * (len(expected) + 1)
    matcher = difflib.SequenceMatcher(None, expected, said, autojunk=False)
    for _, first, last, said_first, said_last in matcher.get_opcodes():
        for index in range(first, last):
            landed[index] = said_first + (index - first) * (said_last - said_first) // (last - first)
    landed[len(expected)] = len(said)
    spans: list[Span | None] = []
    for first, last in bounds:
        said_first, said_last = landed[first], landed[last]
        if first == last or said_first >= said_last:
            spans.append(None)
        else:
            spans.append((spoken[said_first][1], spoken[said_last - 1][2]))
    return settle(spans, duration)


def _share(spans: list[Span | None], group: list[int], weights: list[int], start: float, end: float) -> None:
    """Splits ``start..end`` among the words of ``group`` by weight; the first word always speaks."""
    weights = [max(weights[0], 1), *weights[1:]]
    total = sum(weights)
    position = start
    for index, weight in zip(group, weights, strict=True):
        if weight == 0:
            continue
        length = (end - start) * weight / total
        spans[index] = (position, position + length)
        position += length


def _speech_end(samples: array.array[int], sample_rate: int, start: float, end: float) -> float:
    """``end`` moved back over the silence that ends ``start..end``, if any."""
    frame = max(1, round(_FRAME_SECONDS * sample_rate))
    first = round(start * sample_rate)
    last = min(round(end * sample_rate), len(samples))
    while last - frame > first:
        window = samples[last - frame : last]
        if max(window) >= _SILENCE_LEVEL or -min(window) >= _SILENCE_LEVEL:
            break
        last -= frame
    return max(last / sample_rate, start)


def settle(spans: Sequence[Span | None], duration: float) -> list[Span]:
    """The final spans: unspoken words (None) share the silence between their neighbours, every span lies
    inside ``0..duration`` and starts where the one before it ended or later, in milliseconds."""
    filled: list[Span | None] = list(spans)
    index = 0
    while index < len(filled):
        if filled[index] is not None:
            index += 1
            continue
        run_end = index
        while run_end < len(filled) and filled[run_end] is None:
            run_end += 1
        before = filled[index - 1] if index > 0 else None
        after = filled[run_end] if run_end < len(filled) else None
        gap_start = before[1] if before is not None else 0.0
        gap_end = after[0] if after is not None else duration
        step = max(gap_end - gap_start, 0.0) / (run_end - index)
        for offset, missing in enumerate(range(index, run_end)):
            filled[missing] = (gap_start + offset * step, gap_start + (offset + 1) * step)
        index = run_end
    settled: list[Span] = []
    previous_end = 0.0
    for span in filled:
        assert span is not None
        start = min(max(_milliseconds(span[0]), previous_end), duration)
        end = min(max(_milliseconds(span[1]), start), duration)
        settled.append((start, end))
        previous_end = end
    return settled


def _milliseconds(seconds: float) -> float:
    return round(seconds, 3)
