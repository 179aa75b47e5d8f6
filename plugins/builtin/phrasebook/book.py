"""What one language's sentences for the built-in writer are (``Phrasebook``), and the tone families.

Every sentence but the sign-off carries a slot filled from the brief (``{topic}``, ``{audience}``,
``{goal}``, ``{count}``), so no line fits any topic. Slots sit where the brief's words stay grammatical
as the user types them: after a colon (``Das Ziel: den Wasserkreislauf verstehen.``), after a preposition
that takes a bare noun phrase in that language (``sur``, ``sobre``, ``für``), or as an indirect question
(``Ever wondered how volcanoes form?``). German topics are only ever placed after a colon, so the
article's case never changes. Each sentence has one variant per tone family (neutral, playful, serious),
picked by the brief's tone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEUTRAL, PLAYFUL, SERIOUS = "neutral", "playful", "serious"
# Words a user types as a tone, mapped to the variant family that reads right for it.
TONE_FAMILIES = {
    "playful": PLAYFUL,
    "fun": PLAYFUL,
    "funny": PLAYFUL,
    "friendly": PLAYFUL,
    "casual": PLAYFUL,
    "enthusiastic": PLAYFUL,
    "inspiring": PLAYFUL,
    "ludique": PLAYFUL,
    "drôle": PLAYFUL,
    "locker": PLAYFUL,
    "lustig": PLAYFUL,
    "divertido": PLAYFUL,
    "serious": SERIOUS,
    "formal": SERIOUS,
    "professional": SERIOUS,
    "calm": SERIOUS,
    "sérieux": SERIOUS,
    "formel": SERIOUS,
    "ernst": SERIOUS,
    "sachlich": SERIOUS,
    "serio": SERIOUS,
    "formal ": SERIOUS,
}

Variants = dict[str, str]


@dataclass(frozen=True)
class Phrasebook:
    """One language's sentences. Keys of each ``Variants`` are tone families; ``neutral`` is required."""

    language: str
    # First words that may be lowercased mid-sentence (articles, pronouns, question words...).
    function_words: frozenset[str]
    question_words: frozenset[str]
    # The hook, by the topic's kind: a noun phrase, an indirect question ("how volcanoes form"), a question.
    hook_noun: Variants
    hook_clause: Variants
    question: str  # a topic typed as a question, spoken as one
    # Without key points there is nothing to explain: these say only what the video is about.
    intro_noun: str
    intro_clause: str
    # The same, for a topic whose first word may be a name: the topic opens the sentence.
    lead_topic: str
    intro_topic: str
    audience: Variants
    goal: Variants
    goal_determiner: Variants  # English only: a goal that starts with an article reads as a noun phrase
    preview: Variants
    close_goal: Variants
    close_goal_determiner: Variants
    close_audience: Variants
    close_noun: Variants
    close_clause: Variants
    close_question: Variants
    sign_off: str
    # Lead-ins of the key points: the first, the ones between, the last; "{point}" is the point's sentence.
    lead_first: str
    lead_middle: tuple[str, ...]
    lead_last: str
    # Joins a short sentence to the next one ("Magma rises, and it erupts.").
    join: str
    close_title: str
    numbers: tuple[str, ...]  # 0..20 as words
    audience_articles: frozenset[str] = field(default_factory=frozenset)
    # Whether the lead-ins take a sentence that starts with a capital (German after a colon).
    lead_keeps_capital: bool = False
    # A key point's title is its first words (writer.py): no title ends on one of these or on a function
    # word ("Molten rock is" -> "Molten rock").
    title_weak_words: frozenset[str] = field(default_factory=frozenset)
    # Leading words a title drops, as headlines do ("The molten rock" -> "Molten rock").
    title_articles: frozenset[str] = field(default_factory=frozenset)


def pick(variants: Variants, family: str) -> str:
    return variants.get(family) or variants[NEUTRAL]
