"""A pictogram for each scene: the colour emoji whose name best matches the scene's own words.

The names come from the ``emoji`` package (its CLDR short names and GitHub-style aliases, e.g. ``volcano``,
``otter``, ``water_wave`` alias ``ocean``), installed as an ordinary dependency, so nothing is fetched at run
time. The emoji are drawn from the vendored Noto Color Emoji (``text.py``).

Matching, in this order:

1. The scene's words (the title counts twice, then the caption and the narration), lower-cased, stop words
   dropped and plurals stemmed simply (``otters`` -> ``otter``, ``volcanoes`` -> ``volcano``, ``berries``
   -> ``berry``). An emoji scores, for each word that names it, the share of its name's words that word
   covers (``volcano`` covers all of ``volcano``, ``water`` half of ``water_wave``), times the word's
   weight; a match covering less than half a name is no match (``place`` does not pick
   ``1st_place_medal``). The highest score wins, ties by the dataset's order.
2. When no word of the scene names an emoji, the brief's topic is matched the same way. The opening and the
   close (hints "title" and "summary") speak of the whole video: for them the topic comes first.
3. Failing both, the scene's visual hint picks a fixed symbol (a list 📋, a quote 💬, text 💡): never a
   random one.

The names are those of the script's language where the dataset has it (Spanish, Japanese, Korean,
Portuguese, Italian, French, German, Persian, Indonesian, Chinese, Russian, Turkish, Arabic; English
otherwise): "Les loutres" picks 🦦 from its French name ``loutre``. Other languages get no stop-word list,
only words of four letters or more, and lose only a final ``-s``.

:data:`RELATED` adds a few everyday English words the CLDR names miss (``water`` names 💧 too). Only
single emoji (one code point, with its presentation selector, or a country's flag) are indexed: skin-tone,
gendered and joined sequences, subdivision flags and keycaps are left out, so every pictogram is one glyph
of the vendored font.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import emoji
from PIL import Image, ImageDraw

from reelcast.plugins.builtin.text import emoji_face, truetype

# Words too common to name a picture: function words, and verbs and adjectives any narration uses.
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each even every few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just let like
    made make makes many may me more most much must my myself no nor not now of off on once one only or other
    our ours out over own part point same she should so some such than that the their theirs them then there
    these they this those through to too under until up upon us very was we were what when where which while
    who whom why will with would you your yours yourself new first last next way ways thing things get got
    see look use used uses using take takes know known show shows call called come comes go goes keep kind
    lot lots place places really well good great big small little long high low right left top end back day
    time today video scene here's let's it's that's there's what's""".split()  # noqa: SIM905  (reads as words)
)
# Words of emoji names that say nothing about the subject.
NAME_NOISE = frozenset({"with", "of", "and", "the", "in", "on", "button", "sign", "symbol", "mark", "face"})
# Everyday words whose emoji the CLDR names miss: word -> emoji names (as in the ``emoji`` package).
RELATED: dict[str, tuple[str, ...]] = {
    "water": ("droplet",),
    "idea": ("light_bulb",),
    "money": ("money_bag",),
    "science": ("microscope",),
    "health": ("stethoscope",),
    "weather": ("sun_behind_rain_cloud",),
    "music": ("musical_note",),
    "learn": ("books",),
    "school": ("school",),
    "energy": ("high_voltage",),
    "electricity": ("high_voltage",),
    "growth": ("chart_increasing",),
    "data": ("bar_chart",),
    "internet": ("globe_with_meridians",),
    "computer": ("laptop",),
    "code": ("laptop",),
    "climate": ("globe_showing_Europe-Africa",),
    "earth": ("globe_showing_Europe-Africa",),
    "planet": ("ringed_planet",),
    "space": ("rocket",),
    "food": ("fork_and_knife_with_plate",),
    "sleep": ("zzz",),
    "history": ("scroll",),
    "law": ("balance_scale",),
}
# The fallback for a scene and a topic that name nothing, by the scene's visual hint.
HINT_SYMBOLS: dict[str, str] = {
    "list": "\U0001f4cb",  # clipboard
    "summary": "\u2705",  # check mark button
    "quote": "\U0001f4ac",  # speech balloon
    "diagram": "\U0001f4ca",  # bar chart
    "title": "\U0001f3ac",  # clapper board
}
DEFAULT_SYMBOL = "\U0001f4a1"  # light bulb
# The hints of the writer's opening ("title") and close ("summary") scenes.
WHOLE_VIDEO_HINTS = frozenset({"title", "summary"})
MIN_COVERAGE = 0.5
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_VARIATION_SELECTOR = "\ufe0f"


@dataclass(frozen=True)
class Pictogram:
    """The emoji chosen for a scene, its name and what chose it ("scene", "topic" or "hint")."""

    emoji: str
    name: str
    source: str


def stem(word: str, language: str = "en") -> str:
    """A plural's singular, by the usual English endings (other languages: a final -s, as in French,
    Spanish, Portuguese and Italian loans); other words unchanged, lower-cased."""
    word = word.lower()
    if language != "en":
        return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word
    word = word.removesuffix("'s").removesuffix("’s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("oes", "sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words_of(text: str, language: str = "en") -> list[str]:
    """The stemmed words of ``text`` that may name a picture: English stop words dropped; in another
    language, whose function words are not listed, words of fewer than four letters."""
    found = (stem(word, language) for word in _WORD.findall(text))
    if language == "en":
        return [word for word in found if len(word) > 2 and word not in STOP_WORDS]
    return [word for word in found if len(word) > 3]


def _name_words(name: str, language: str) -> list[str]:
    noise = NAME_NOISE if language == "en" else frozenset()
    return [
        stem(part, language)
        for part in re.split(r"[_\-\s]+", name.strip(":"))
        if part and part.lower() not in noise and len(part) > (0 if language == "en" else 2)
    ]


def dataset_language(language: str) -> str:
    """The ``emoji`` dataset's language for a BCP-47 tag ("fr-CA" -> "fr"); English when it has none."""
    base = language.split("-")[0].lower()
    return base if base in emoji.LANGUAGES else "en"


_LOADING = threading.Lock()


def _indexable(char: str, data: dict[str, object]) -> bool:
    body = char.removesuffix(_VARIATION_SELECTOR)
    face = emoji_face()
    flag = len(body) == 2 and all(0x1F1E6 <= ord(part) <= 0x1F1FF for part in body)
    single = len(body) == 1 or flag
    return data.get("status") == emoji.STATUS["fully_qualified"] and single and all(map(face.covers, body))


@functools.cache
def _index(language: str = "en") -> tuple[dict[str, list[tuple[str, float]]], dict[str, tuple[str, str]]]:
    """word -> [(emoji, share of its name covered)] in the dataset's order, and name -> (emoji, English
    name), for the names in ``language`` (English: with the aliases)."""
    if language != "en":
        with _LOADING:  # the dataset adds a language's names to its one table, on first use
            emoji.config.load_language(language)
    by_word: dict[str, list[tuple[str, float]]] = defaultdict(list)
    by_name: dict[str, tuple[str, str]] = {}
    for char, data in emoji.EMOJI_DATA.items():
        if not _indexable(char, data) or language not in data:
            continue
        english = str(data["en"]).strip(":")
        names = [str(data[language]).strip(":")]
        if language == "en":
            names += [str(alias).strip(":") for alias in data.get("alias", ())]
        for name in names:
            by_name.setdefault(name, (char, english))
            parts = _name_words(name, language)
            if not parts:
                continue
            for part in set(parts):
                by_word[part].append((char, parts.count(part) / len(parts)))
    return dict(by_word), by_name


def _scores(weighted_words: Iterable[tuple[str, float]], language: str) -> dict[str, float]:
    by_word, by_name = _index(language)
    scores: dict[str, float] = defaultdict(float)
    matched: dict[str, set[str]] = defaultdict(set)
    for word, weight in weighted_words:
        best: dict[str, float] = {}
        for char, coverage in by_word.get(word, ()):
            if coverage >= MIN_COVERAGE:
                best[char] = max(best.get(char, 0.0), coverage)
        for name in RELATED.get(word, ()) if language == "en" else ():
            if name in by_name:
                best[by_name[name][0]] = 1.0
        for char, coverage in best.items():
            scores[char] += weight * coverage
            matched[char].add(word)
    # An emoji that several different words name fits better than one named by a repeated word.
    return {char: score + 0.25 * (len(matched[char]) - 1) for char, score in scores.items()}


def _best(weighted_words: Sequence[tuple[str, float]], language: str) -> str | None:
    scores = _scores(weighted_words, language)
    if not scores:
        return None
    order = {char: position for position, char in enumerate(emoji.EMOJI_DATA)}
    return max(scores, key=lambda char: (scores[char], -order.get(char, 0)))


def _name_of(char: str) -> str:
    data = emoji.EMOJI_DATA.get(char) or emoji.EMOJI_DATA.get(char + _VARIATION_SELECTOR) or {}
    return str(data.get("en", ":symbol:")).strip(":")


def choose_pictogram(title: str, text: str, topic: str, hint: str, language: str = "en") -> Pictogram:
    """The scene's pictogram: its own words', else its topic's, else its hint's symbol (see the module);
    the words are matched against the emoji names in the script's ``language`` (a BCP-47 tag)."""
    names = dataset_language(language)
    title_words, text_words = words_of(title, names), words_of(text, names)
    scene_words = [(word, 2.0) for word in title_words] + [(word, 1.0) for word in text_words]
    topic_words = [(word, 1.0) for word in words_of(topic, names)]
    # The opening and the close speak of the whole video, and their stock words ("In short") name nothing
    # of it: the topic chooses their picture first.
    order = [(topic_words, "topic"), (scene_words, "scene")]
    if hint not in WHOLE_VIDEO_HINTS:
        order.reverse()
    for weighted, source in order:
        chosen = _best(weighted, names)
        if chosen is not None:
            return Pictogram(chosen, _name_of(chosen), source)
    symbol = HINT_SYMBOLS.get(hint, DEFAULT_SYMBOL)
    return Pictogram(symbol, _name_of(symbol), "hint")


def render_pictogram(char: str, side: int) -> Image.Image:
    """The emoji as an RGBA square of ``side`` pixels, drawn at the font's one bitmap size and scaled."""
    face = emoji_face()
    font = truetype(face, face.strike or side)
    glyph = char if char.endswith(_VARIATION_SELECTOR) else char + _VARIATION_SELECTOR
    left, top, right, bottom = font.getbbox(glyph, anchor="ls")
    canvas = Image.new("RGBA", (max(1, int(right - left)), max(1, int(bottom - top))), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((-left, -top), glyph, font=font, anchor="ls", embedded_color=True)
    cropped = canvas.crop(canvas.getbbox() or (0, 0, canvas.width, canvas.height))
    scale = side / max(cropped.width, cropped.height)
    size = (max(1, round(cropped.width * scale)), max(1, round(cropped.height * scale)))
    scaled = cropped.resize(size, Image.Resampling.LANCZOS)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(scaled, ((side - size[0]) // 2, (side - size[1]) // 2))
    return square
