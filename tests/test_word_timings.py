"""Mapping the engines' timing onto the script's words (plugins/builtin/word_timings.py), on the shapes the
engines were seen to report: words joined or split by the phonemizer, events one word early, silent words."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from reelcast.plugins.builtin.word_timings import settle, spans_from_phonemes, spans_from_word_starts


def _timed(phonemes: str, start: float = 0.0, each: float = 0.05) -> list[tuple[str, float, float]]:
    return [(p, start + i * each, start + (i + 1) * each) for i, p in enumerate(phonemes)]


def test_words_the_phonemizer_joins_still_get_their_own_times() -> None:
    # "of the" is spoken as one phoneme word, "ʌvðə"; each text word keeps its own phonemes' times.
    spans = spans_from_phonemes(["ʌv", "ðə", "bˈɛst"], _timed("ʌvðəbˈɛst"), 1.0)
    assert spans == [(0.0, 0.1), (0.1, 0.2), (0.2, 0.45)]


def test_a_word_spoken_differently_in_context_is_spread_over_what_was_said() -> None:
    # "e.g." alone is "ˌiːdʒˈiː"; in a sentence it is "for example": the replaced run is that word's.
    said = "ðəfˌɔːɹɛɡzˈæmpəlkwˈiːn"
    spans = spans_from_phonemes(["ðə", "ˌiːdʒˈiː", "kwˈiːn"], _timed(said), 2.0)
    # A phoneme said between two words ("f") goes to the word before it: "the" takes at most that one.
    assert spans[0][0] == 0.0 and 0.1 <= spans[0][1] <= 0.15
    assert spans[1] == (spans[0][1], round(0.05 * said.index("kwˈiːn"), 3))
    assert spans[2] == (spans[1][1], round(0.05 * len(said), 3))


def test_a_word_with_no_phonemes_spans_the_pause_between_its_neighbours() -> None:
    # "—" has no phonemes; the pause between "volcano" and "really" (0.3 to 0.5 s) is its.
    said = _timed("vɑːl", 0.1) + _timed("ɹiəl", 0.5)
    spans = spans_from_phonemes(["vɑːl", "", "ɹiəl"], said, 1.0)
    assert spans == [(0.1, 0.3), (0.3, 0.5), (0.5, 0.7)]


def test_an_espeak_event_one_word_early_belongs_to_the_next_word() -> None:
    text = "Most of the lava"
    pcm = b"\x10\x27" * 22050  # a second of constant sound at 10000: nothing is trimmed as silence
    # espeak put "of" at character 1 (inside "Most"), the others where they are.
    starts = [(0, 0.0), (1, 0.35), (8, 0.47), (12, 0.58)]
    spans = spans_from_word_starts(text, starts, [1.0], pcm, 22050)
    assert [start for start, _ in spans] == [0.0, 0.35, 0.47, 0.58]


def test_a_number_espeak_says_as_two_words_is_one_word_and_joined_words_share_a_span() -> None:
    text = "in 1990 of the lava"
    pcm = b"\x10\x27" * 22050
    # "1990": two events (nineteen hundred, ninety); "of the": one event for both words.
    starts = [(0, 0.0), (3, 0.1), (4, 0.4), (8, 0.6), (15, 0.8)]
    spans = spans_from_word_starts(text, starts, [1.0], pcm, 22050)
    assert spans[1] == (0.1, 0.6)
    assert spans[2] == (0.6, 0.68) and spans[3] == (0.68, 0.8)  # "of" and "the" split by letters, 2:3
    assert spans[4] == (0.8, 1.0)


def test_a_word_ends_where_its_speech_does_not_after_the_pause_that_follows_it() -> None:
    sound, silence = b"\x10\x27" * 11025, b"\x00\x00" * 11025
    spans = spans_from_word_starts("Stop. Go.", [(0, 0.0), (6, 0.5)], [0.5, 1.0], sound + silence, 22050)
    assert abs(spans[0][1] - 0.5) < 0.011  # "Stop." sounds until 0.5 s ...
    spans = spans_from_word_starts("Stop. Go.", [(0, 0.0), (6, 1.0)], [1.0], sound + silence + sound, 22050)
    assert abs(spans[0][1] - 0.5) < 0.011  # ... and ends there, not when "Go." starts after the pause.


spans_or_silent = st.lists(
    st.one_of(st.none(), st.tuples(st.floats(0, 20), st.floats(0, 20))), min_size=0, max_size=30
)


@given(spans_or_silent, st.floats(0.1, 25))
def test_settled_spans_are_one_per_word_in_order_and_inside_the_audio(
    raw: list[tuple[float, float] | None], duration: float
) -> None:
    settled = settle(raw, duration)
    assert len(settled) == len(raw)
    for start, end in settled:
        assert 0.0 <= start <= end <= duration
    for (_, end), (start, _) in itertools.pairwise(settled):
        assert end <= start
