"""The built-in writer's sentences in English, French, German and Spanish, one module per language.

Every sentence but the sign-off carries a slot filled from the brief (``{topic}``, ``{audience}``,
``{goal}``, ``{count}``), so no line fits any topic; book.py says where the slots sit and why.
"""

from __future__ import annotations

from reelcast.plugins.builtin.phrasebook.book import (
    NEUTRAL,
    PLAYFUL,
    SERIOUS,
    TONE_FAMILIES,
    Phrasebook,
    Variants,
    pick,
)
from reelcast.plugins.builtin.phrasebook.de import GERMAN
from reelcast.plugins.builtin.phrasebook.en import ENGLISH
from reelcast.plugins.builtin.phrasebook.es import SPANISH
from reelcast.plugins.builtin.phrasebook.fr import FRENCH

__all__ = [
    "ENGLISH",
    "FRENCH",
    "GERMAN",
    "NEUTRAL",
    "PHRASEBOOKS",
    "PLAYFUL",
    "SERIOUS",
    "SPANISH",
    "TONE_FAMILIES",
    "Phrasebook",
    "Variants",
    "pick",
]

PHRASEBOOKS = {book.language: book for book in (ENGLISH, FRENCH, GERMAN, SPANISH)}
