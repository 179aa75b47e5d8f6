"""The built-in writer: a script built around the brief's key points, saying nothing it was not told.

The script is a hook (the topic, the audience, the goal), one scene per key point and a close that comes
back to the goal and the audience. Key points are spoken as the user wrote them (recased where a lead-in
such as "First," comes before them), so every fact in the video is the user's. The writer plans in
seconds: each sentence's length is estimated from the voice engine's measured pace and the speaking
rate, the mandatory parts (hook, key points, sign-off) are placed first, then the optional lines
(audience, goal, a count of the points, lead-ins, closing lines) while they fit the target. Key points
that do not fill the target make a shorter video, and the notes say so; a target too short for them makes
a longer one. Without key points the video only says what it is about and for whom.

Scenes: short key points are merged so a scene lasts at least ``MIN_SCENE_SECONDS`` (two at most, and never
past ``MAX_SCENE_SECONDS``); a key point of several sentences longer than ``MAX_SCENE_SECONDS`` is split at a
sentence end. A sentence shorter than ``MIN_SENTENCE_SECONDS`` is joined to the next one, so no caption
flashes by.

What a scene shows covers what it says: its caption is its narration, and a key point's scene is titled
with the point's first words (``short_title``), one bulleted line per point when it holds two.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from reelcast.plugins.builtin.pauses import ENDING_SECONDS, PIPER_SENTENCE_SECONDS, SCENE_PAUSE_SECONDS
from reelcast.plugins.builtin.phrasebook import (
    ENGLISH,
    NEUTRAL,
    PHRASEBOOKS,
    TONE_FAMILIES,
    Phrasebook,
    pick,
)

MIN_SCENE_SECONDS = 4.0
MAX_SCENE_SECONDS = 12.0
MIN_SENTENCE_SECONDS = 1.3
MAX_POINTS_PER_SCENE = 2
RUNS_LONG_FACTOR = 1.1  # the acceptance's tolerance on the target duration
# A key point's title fits two lines of the narrowest frame (9:16) at the visuals' full title size; a scene
# of two points gives each a share of about one line.
MAX_TITLE_CHARS = 32
MAX_TITLE_WORDS = 5
MAX_SHARED_TITLE_CHARS = 18
# A scene of two points titles each on a bulleted line of its own: run together ("Sunlight contains / Air
# molecules") they read as one phrase, and a separator such as " · " wraps to the start of a line.
TITLE_BULLET = "• "
_CLAUSE_END = (",", ";", ":", "—", "–")
_QUOTES = "\"'“”‘’«»()[]¿¡"
_TITLE_END = ".,;:!?…—– "
# How fast each voice engine speaks: characters (not counting spaces) per second at REFERENCE_RATE words per
# minute, measured on sentences of this writer with the engine's default voice of the language, pauses at
# punctuation included. At another rate the pace scales by (rate / REFERENCE_RATE) ** rate_exponent:
# espeak-ng stretches everything it says (exponent 1); Piper's length_scale stretches its phonemes but not
# its pauses, measured at 136, 160 and 192 wpm (exponent 0.5). A language an engine has no measure of
# takes the engine's English pace.
REFERENCE_RATE = 160


@dataclass(frozen=True)
class EnginePace:
    characters_per_second: dict[str, float]
    rate_exponent: float
    # Optional lines are added while the estimate stays under this share of the target. espeak pads the
    # end of each scene, so a scene speaks a little longer than its sentences alone; Piper's scenes last
    # exactly as long as their sentences.
    fill_factor: float
    # The silence the voice stage puts between two sentences of a scene (pauses.py); espeak's own pause is
    # already in its measured pace.
    sentence_pause: float = 0.0


ESPEAK_PACE = EnginePace({"en": 14.1, "fr": 16.0, "de": 14.3, "es": 14.1}, 1.0, 0.97)
PIPER_PACE = EnginePace({"en": 15.0}, 0.5, 1.0, PIPER_SENTENCE_SECONDS)  # joe (en-us-joe)
ENGINE_PACES = {"espeak-ng": ESPEAK_PACE, "piper": PIPER_PACE}
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class ScriptScene:
    """One scene of a script, written here or given by the user (script.py checks those)."""

    title: str
    narration: str
    caption: str
    visual_hint: str


@dataclass
class WrittenScript:
    language: str
    scenes: list[ScriptScene]
    # What the writer could not do for this brief (no key points, a target it could not fill...).
    notes: list[str] = field(default_factory=list)
    estimated_seconds: float = 0.0
    # Whether the key points alone clearly need more than the target (past RUNS_LONG_FACTOR): every key
    # point is spoken, so the video runs longer, and the notes say so.
    runs_long: bool = False


@dataclass
class _Scene:
    role: str  # "hook", "point", "close"
    sentences: list[str]
    title: str = ""


# A point scene as planned: the key points (or halves of one) it holds, each a list of sentences.
_Parts = list[list[str]]


class Pace:
    """How long a sentence takes to speak in one language at one speaking rate, by one voice engine
    (``"piper"`` or ``"espeak-ng"``, the voice stage's engine names; another engine is paced as espeak)."""

    def __init__(self, language: str, rate: int, engine: str = "espeak-ng") -> None:
        pace = ENGINE_PACES.get(engine, ESPEAK_PACE)
        base = pace.characters_per_second.get(language, pace.characters_per_second["en"])
        self.characters_per_second = base * float((rate / REFERENCE_RATE) ** pace.rate_exponent)
        self.fill_factor = pace.fill_factor
        self.sentence_pause = pace.sentence_pause

    def pauses(self, scenes: int, sentences: int) -> float:
        """The silences the voice stage adds to ``scenes`` scenes of ``sentences`` sentences in all."""
        if scenes == 0:
            return 0.0
        return (
            SCENE_PAUSE_SECONDS * (scenes - 1) + ENDING_SECONDS + self.sentence_pause * (sentences - scenes)
        )

    def seconds(self, text: str) -> float:
        # A digit is read as a word or two ("1789": seventeen eighty-nine), so it weighs four letters.
        letters = sum(len(token) for token in text.split())
        digits = sum(char.isdigit() for char in text)
        return (letters + 3 * digits) / self.characters_per_second


def book_for(language: str) -> Phrasebook | None:
    """The phrasebook of a BCP-47 tag's language (``fr-CA`` reads French), or None."""
    return PHRASEBOOKS.get((language or "en").split("-", 1)[0].lower())


def tone_family(tone: str) -> str:
    return TONE_FAMILIES.get(" ".join(tone.lower().split()), NEUTRAL)


def _tidy(text: str) -> str:
    return " ".join(text.split()).strip()


def _strip_end(text: str) -> str:
    return _tidy(text).rstrip(" .!?;:…")


def _capitalize(text: str) -> str:
    for index, char in enumerate(text):
        if char.isalpha():
            return text[:index] + char.upper() + text[index + 1 :]
    return text


def _sentence(text: str) -> str:
    """``text`` as one sentence: a capital first letter and an end mark."""
    text = _capitalize(_tidy(text))
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _first_word(text: str) -> str:
    match = _WORD.search(text)
    return match.group(0) if match else ""


class Recaser:
    """Lowercases the first word of a phrase placed inside a sentence, when that is safe.

    A first word is lowercased when it is a function word of the language (The, How, Les, Der), or when
    the brief writes the same word in lower case elsewhere (topic "Volcanoes", key point "...the
    volcanoes erupt"). Otherwise it may be a name ("Paris in winter"), and the writer places the phrase
    where a capital is right instead. German only lowercases function
    words: its nouns are capitalized everywhere."""

    def __init__(self, book: Phrasebook, brief_text: str) -> None:
        self.book = book
        self.lowercase_words = {word for word in _WORD.findall(brief_text) if word.islower()}
        self.capitalized_mid_sentence = {
            match.group(1) for match in re.finditer(r"(?<![.!?:]\s)(?<=\s)([A-Z][^\W\d_]+)", brief_text)
        }

    def named_mid_sentence(self, word: str) -> bool:
        """Whether the brief writes ``word`` with a capital after the start of a sentence (a name)."""
        return word in self.capitalized_mid_sentence

    def lowercasable(self, text: str, *, common: bool = False) -> bool:
        word = _first_word(text)
        if not word or not word[0].isupper() or (len(word) > 1 and word.isupper()):
            return not word or word[0].islower()
        lowered = word[0].lower() + word[1:]
        if (
            lowered.lower() in self.book.function_words
            or lowered.split("'")[0] + "'" in self.book.function_words
        ):
            return True
        if self.book.language == "de":
            return False
        if common:  # a goal starts with a verb, an audience with a common noun, unless the brief names it
            return not self.named_mid_sentence(word)
        return lowered in self.lowercase_words

    def inside(self, text: str, *, common: bool = False) -> str | None:
        """``text`` with its first letter lowercased, or None when it may be a name."""
        if not self.lowercasable(text, common=common):
            return None
        index = text.find(_first_word(text)[:1]) if _first_word(text) else 0
        return text[:index] + text[index].lower() + text[index + 1 :] if text else text

    def embedded(self, text: str, *, common: bool = False) -> str:
        """``text`` placed mid-sentence: lowercased when safe, else as typed."""
        lowered = self.inside(text, common=common)
        return text if lowered is None else lowered


def _topic_kind(topic: str, book: Phrasebook) -> str:
    if topic.rstrip().endswith("?"):
        return "question"
    first = _first_word(topic).lower()
    if first in book.question_words or topic.lower().startswith(("por qué ", "pour quoi ")):
        return "clause"
    return "noun"


def _title_case_clause(topic: str) -> str:
    """ "How Volcanoes Form" -> "How volcanoes form": a question typed in title case reads as a clause."""
    words = topic.split()
    capitalized = [word for word in words[1:] if len(word) > 3 and word[:1].isupper() and not word.isupper()]
    long_words = [word for word in words[1:] if len(word) > 3]
    if long_words and len(capitalized) == len(long_words):
        return " ".join([words[0], *(word if word.isupper() else word.lower() for word in words[1:])])
    return topic


def _without_article(text: str, articles: frozenset[str]) -> str:
    words = text.split()
    if len(words) > 1 and words[0].lower() in articles:
        return " ".join(words[1:])
    return text


def _spanish_other(audience: str) -> str:
    first = audience.split()[0].lower() if audience.split() else ""
    return "otras" if first.endswith("as") or first in {"mujeres", "madres", "chicas"} else "otros"


def _looks_plural(audience: str) -> bool:
    """Whether "other {audience}" reads right: a plural ("beginners", "enfants"), not "le grand public"."""
    last = audience.split()[-1].lower() if audience.split() else ""
    return last.endswith(("s", "x")) or last in {"people", "children", "kinder", "leute"}


def split_sentences(text: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(_tidy(text)) if part]


def short_title(sentence: str, book: Phrasebook, max_chars: int = MAX_TITLE_CHARS) -> str:
    """A key point's title: its first words, as a headline has them ("Magma forms deep underground, where
    rock melts." -> "Magma forms deep underground"). A leading article is dropped (English), the title stops
    at the first clause end, at ``MAX_TITLE_WORDS`` or ``max_chars``, ends on a word that carries meaning
    (not "is", "the", "of"...), and starts with a capital; no word is changed, so it says only what the
    user wrote."""
    words = _tidy(sentence).split()
    if len(words) > 1 and words[0].lower() in book.title_articles:
        words = words[1:]
    weak = book.title_weak_words | book.function_words

    def is_weak(word: str) -> bool:
        return word.lower() in weak or word.lower().split("'")[0] + "'" in weak

    kept: list[str] = []
    for word in words:
        bare = word.strip(_QUOTES).rstrip(_TITLE_END).strip(_QUOTES)
        # Past MAX_TITLE_WORDS only to reach a word that carries meaning ("Bake it in a very hot").
        full = len(kept) >= MAX_TITLE_WORDS and not (kept and is_weak(kept[-1]))
        if kept and (full or len(" ".join([*kept, bare])) > max_chars):
            break
        if bare:
            kept.append(bare)
        if word.rstrip(_QUOTES).endswith((*_CLAUSE_END, ".", "!", "?", "…")):
            break
    while len(kept) > 1 and is_weak(kept[-1]):
        kept.pop()
    title = " ".join(kept)
    return _capitalize(title) if title else _capitalize(_strip_end(sentence))


class Writer:
    """Writes one brief's script; ``write()`` returns it."""

    def __init__(
        self,
        *,
        topic: str,
        audience: str,
        goal: str,
        tone: str,
        language: str,
        key_points: list[str],
        target_seconds: float,
        rate: int,
        engine: str = "espeak-ng",
    ) -> None:
        self.notes: list[str] = []
        book = book_for(language)
        if book is None:
            self.notes.append(
                f"The writer has no sentences for language {language!r}; it wrote English (en, fr, de, es "
                "are built in). Supply a script to narrate in another language."
            )
            book = ENGLISH
        self.book = book
        self.family = tone_family(tone)
        self.target = target_seconds
        self.pace = Pace(book.language, rate, engine)
        self.points = [_tidy(point) for point in key_points if _tidy(point)]
        self.recaser = Recaser(book, ". ".join([topic, audience, goal, *self.points]))
        self.topic_raw = topic
        self.topic_typed = _strip_end(topic).lstrip("¿¡ ")
        self.kind = _topic_kind(topic, book)
        self.audience = _strip_end(audience)
        self.goal = _strip_end(goal)

    # -- the parts -------------------------------------------------------------------------------------

    def _variant(self, variants: dict[str, str]) -> str:
        return pick(variants, self.family)

    def _topic_inside(self) -> str | None:
        """The topic recased to sit inside a sentence, or None when its first word may be a name."""
        topic = self.topic_typed
        if self.kind == "clause":
            topic = _title_case_clause(topic)
        if self.book.language == "de":
            return _capitalize(topic)  # German places the topic after a colon, as a sentence of its own
        return self.recaser.inside(topic)

    def _goal_inside(self) -> str:
        goal = self.goal
        if self.book.language == "en" and goal.lower().startswith("to "):
            goal = goal[3:]
        if self.book.language == "de":
            return goal  # after a colon, as typed
        return self.recaser.embedded(goal, common=True)

    def _goal_is_noun_phrase(self) -> bool:
        return self.book.language == "en" and _first_word(self.goal).lower() in {
            "a",
            "an",
            "the",
            "some",
            "more",
            "better",
            "your",
            "clear",
            "good",
        }

    def _audience_inside(self, *, after_other: bool = False) -> str:
        if self.book.language == "de":
            return self.audience
        audience = (
            _without_article(self.audience, self.book.audience_articles) if after_other else self.audience
        )
        return self.recaser.embedded(audience, common=True)

    def hook(self) -> str:
        topic = self._topic_inside()
        if self.kind == "question":
            return _sentence(self.book.question.format(topic=_capitalize(self.topic_typed)))
        if topic is None:
            # "Sea otters", "Paris in winter": the topic opens the sentence, where its capital is right.
            template = self.book.lead_topic if self.points else self.book.intro_topic
            return _sentence(template.format(topic=_capitalize(self.topic_typed)))
        if not self.points:
            template = self.book.intro_clause if self.kind == "clause" else self.book.intro_noun
            return _sentence(template.format(topic=topic))
        template = self._variant(self.book.hook_clause if self.kind == "clause" else self.book.hook_noun)
        return _sentence(template.format(topic=topic))

    def audience_line(self) -> str | None:
        if not self.audience:
            return None
        return _sentence(self._variant(self.book.audience).format(audience=self._audience_inside()))

    def goal_line(self) -> str | None:
        if not self.goal:
            return None
        variants = self.book.goal_determiner if self._goal_is_noun_phrase() else self.book.goal
        return _sentence(self._variant(variants).format(goal=self._goal_inside()))

    def preview_line(self) -> str | None:
        count = len(self.points)
        if count < 2 or count >= len(self.book.numbers):
            return None
        return _sentence(self._variant(self.book.preview).format(count=self.book.numbers[count]))

    def closing_lines(self) -> list[str]:
        """The close, most useful first: back to the goal, to the audience, then the topic."""
        lines: list[str] = []
        if self.goal:
            variants = (
                self.book.close_goal_determiner if self._goal_is_noun_phrase() else self.book.close_goal
            )
            lines.append(_sentence(self._variant(variants).format(goal=self._goal_inside())))
        if self.audience and _looks_plural(self.audience):
            audience = self._audience_inside(after_other=True)
            other = _spanish_other(audience) if self.book.language == "es" else ""
            lines.append(
                _sentence(self._variant(self.book.close_audience).format(audience=audience, other=other))
            )
        topic = self._topic_inside()
        if self.kind == "question":
            # German keeps the question's capital after the colon; the others lowercase it when safe.
            question = (
                topic if self.book.language == "de" and topic else self.recaser.embedded(self.topic_typed)
            )
            lines.append(_sentence(self._variant(self.book.close_question).format(topic=question)))
        elif topic is None:
            pass  # the topic would need its capital mid-sentence: the close leaves it out
        elif self.kind == "clause":
            lines.append(_sentence(self._variant(self.book.close_clause).format(topic=topic)))
        else:
            lines.append(_sentence(self._variant(self.book.close_noun).format(topic=topic)))
        return lines

    def lead_in(self, index: int, count: int, sentence: str) -> str | None:
        """The key point's first sentence after "First,", "Next,"... or None when it cannot be recased."""
        if count < 2:
            return None
        if index == 0:
            template = self.book.lead_first
        elif index == count - 1:
            template = self.book.lead_last
        else:
            template = self.book.lead_middle[(index - 1) % len(self.book.lead_middle)]
        if self.book.lead_keeps_capital:
            return template.format(point=sentence)
        lowered = self.recaser.inside(sentence)
        return None if lowered is None else template.format(point=lowered)

    # -- planning --------------------------------------------------------------------------------------

    def _point_scenes(self) -> list[_Parts]:
        """The key points' sentences grouped into scenes: short points merged, long ones split."""
        groups = [[_sentence(part) for part in split_sentences(point)] for point in self.points]
        scenes: list[_Parts] = []
        for sentences in groups:
            seconds = sum(self.pace.seconds(sentence) for sentence in sentences)
            if seconds > MAX_SCENE_SECONDS and len(sentences) > 1:
                half = len(sentences) // 2
                scenes.extend([[sentences[:half]], [sentences[half:]]])
            else:
                scenes.append([sentences])
        # One scene per point, unless there are more points than scenes of MIN_SCENE_SECONDS fit in the
        # target: then the shortest neighbours are merged until they fit, two points to a scene at most and
        # never past MAX_SCENE_SECONDS (a longer scene would hold more than its title and caption can show).
        room = max(1, int(self.target // MIN_SCENE_SECONDS) - 2)
        merged = [list(parts) for parts in scenes]
        while len(merged) > room:
            candidates = [
                (self._seconds(_flat(a)) + self._seconds(_flat(b)), index)
                for index, (a, b) in enumerate(itertools.pairwise(merged))
                if len(a) + len(b) <= MAX_POINTS_PER_SCENE
            ]
            fitting = [candidate for candidate in candidates if candidate[0] <= MAX_SCENE_SECONDS]
            if not fitting:
                break
            best = min(fitting)[1]
            merged[best : best + 2] = [merged[best] + merged[best + 1]]
        return merged

    def point_title(self, parts: _Parts) -> str:
        """The title of a scene holding ``parts``: each part's short title, so it names all it says."""
        share = MAX_TITLE_CHARS if len(parts) == 1 else MAX_SHARED_TITLE_CHARS
        titles = [short_title(part[0], self.book, share) for part in parts]
        return titles[0] if len(titles) == 1 else "\n".join(TITLE_BULLET + title for title in titles)

    def _seconds(self, sentences: list[str]) -> float:
        return sum(self.pace.seconds(sentence) for sentence in sentences)

    def write(self) -> WrittenScript:
        hook = _Scene("hook", [self.hook()], _capitalize(_tidy(self.topic_raw)))
        point_scenes = self._point_scenes()
        points = [_Scene("point", _flat(parts), self.point_title(parts)) for parts in point_scenes]
        close = _Scene("close", [], self.book.close_title)
        scenes = [hook, *points, close] if points else [hook, close]

        def total() -> float:
            # The sign-off ends the close; until it is there, it counts as one more sentence to come.
            spoken = [sentence for scene in scenes for sentence in scene.sentences]
            if not close.sentences or close.sentences[-1] is not self.book.sign_off:
                spoken.append(self.book.sign_off)
            speech = sum(self.pace.seconds(sentence) for sentence in spoken)
            return speech + self.pace.pauses(len(scenes), len(spoken))

        def try_add(add: Callable[[], None], cost: float) -> None:
            # A line is added when it brings the estimate closer to the target than leaving it out.
            aim = self.target * self.pace.fill_factor
            if abs(total() + cost - aim) < abs(total() - aim):
                add()

        optional: list[tuple[str, str]] = []
        if self.points:
            # Lead-ins first: they make the list of points easy to follow at almost no cost.
            starts = [scene.sentences[0] for scene in points]
            # "Finally," reads wrong without a "First,": lead-ins only when the first point takes one.
            led_points = points if self.lead_in(0, len(points), starts[0]) is not None else []
            for index, scene in enumerate(led_points):
                led = self.lead_in(index, len(points), starts[index])
                if led is not None:
                    cost = self.pace.seconds(led) - self.pace.seconds(starts[index])
                    try_add(functools.partial(scene.sentences.__setitem__, 0, led), cost)
            for line in (self.audience_line(), self.goal_line(), self.preview_line()):
                if line:
                    optional.append(("hook", line))
            optional.extend(("close", line) for line in self.closing_lines())
        else:
            self.notes.append(
                "No key points: the video only says what it is about. Add key points (the facts to say, "
                "in order) for a full video."
            )
            line = self.audience_line()
            if line:
                optional.append(("hook", line))
        for where, line in optional:
            target_scene = hook if where == "hook" else close
            cost = self.pace.seconds(line) + self.pace.sentence_pause
            try_add(functools.partial(target_scene.sentences.append, line), cost)
        close.sentences.append(self.book.sign_off)
        if not points and len(hook.sentences) + len(close.sentences) <= 3:
            hook.sentences.extend(close.sentences)
            scenes = [hook]
        estimate = total()
        if self.points and estimate < self.target * 0.9:
            self.notes.append(
                f"The key points fill about {estimate:.0f} s of the {self.target:.0f} s target, so the video "
                "is shorter: add key points or details to fill it."
            )
        runs_long = bool(self.points) and estimate > self.target * RUNS_LONG_FACTOR
        if runs_long:
            self.notes.append(
                f"The key points need about {estimate:.0f} s; target {self.target:.0f} s: the video runs "
                "longer (shorten the key points to fit)."
            )
        return WrittenScript(
            language=self.book.language,
            scenes=[self._finish(scene) for scene in scenes],
            notes=self.notes,
            estimated_seconds=round(estimate, 1),
            runs_long=runs_long,
        )

    def _finish(self, scene: _Scene) -> ScriptScene:
        signed = scene.sentences[-1:] == [self.book.sign_off]
        sentences = self._join_short(scene.sentences[:-1] if signed else scene.sentences)
        if signed:
            sentences.append(self.book.sign_off)
        narration = " ".join(sentences)
        # The caption says all the scene says, as a user-supplied scene's caption defaults to its narration.
        caption = narration
        hint = {"hook": "title", "point": "list", "close": "summary"}[scene.role]
        return ScriptScene(scene.title, narration, caption, hint)

    def _join_short(self, sentences: list[str]) -> list[str]:
        """Joins a sentence too short to read as a caption to its neighbour with "..., and ..."."""
        joined: list[str] = []
        for sentence in sentences:
            if joined and self.pace.seconds(joined[-1]) < MIN_SENTENCE_SECONDS and joined[-1].endswith("."):
                second = self.recaser.inside(sentence)
                if second is not None:
                    joined[-1] = self.book.join.format(first=joined[-1][:-1], second=second)
                    continue
            joined.append(sentence)
        if (
            len(joined) > 1
            and self.pace.seconds(joined[-1]) < MIN_SENTENCE_SECONDS
            and joined[-2].endswith(".")
        ):
            second = self.recaser.inside(joined[-1])
            if second is not None:
                joined[-2:] = [self.book.join.format(first=joined[-2][:-1], second=second)]
        return joined


def _flat(parts: _Parts) -> list[str]:
    return [sentence for part in parts for sentence in part]
