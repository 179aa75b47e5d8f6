"""The visual themes a job picks with ``Plan.style``: palette, type and layout of the scene cards.

``clean`` (the default) keeps reelcast's deep gradients with white type, centred, the pictogram on a soft
disc to the left of the text. ``bold`` is flat saturated colour, upper-case ExtraBold headings set left and
the pictogram on a solid accent disc to the right. ``paper`` is warm off-white paper with dark ink, the
pictogram on a white card with a hairline border.

An unknown name fails the visuals step with ``E405-UNKNOWN_THEME`` (see ``Plan.style``); the names are listed
by ``ListThemes`` with a small preview each (:func:`preview_png`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.plugins.builtin.text import Face, bold_face

Color = tuple[int, int, int]
# (top, bottom, accent) of one scene's card.
Swatch = tuple[Color, Color, Color]
DEFAULT_THEME = "clean"


@dataclass(frozen=True)
class Theme:
    name: str
    title: str
    description: str
    # By scene position, so that neighbouring scenes never share an entry.
    palette: tuple[Swatch, ...]
    text_color: Color
    heading_face: Callable[[], Face | None]
    heading_upper: bool
    # "center" or "left": how headings and text lines are set.
    align: str
    # Which side of the text the pictogram takes on landscape frames ("left" or "right").
    pictogram_side: str
    # What sits behind the pictogram: "disc" (translucent light), "solid" (the accent) or "card" (paper).
    backdrop: str
    heading_scale: float = 0.09

    def swatch(self, number: int) -> Swatch:
        return self.palette[number % len(self.palette)]


def _no_face() -> Face | None:
    return None


THEMES: dict[str, Theme] = {
    theme.name: theme
    for theme in (
        Theme(
            name="clean",
            title="Clean",
            description="Deep gradients, white type, centred; the pictogram on a soft disc.",
            palette=(
                ((18, 32, 71), (44, 86, 160), (255, 196, 61)),
                ((84, 22, 48), (170, 58, 84), (120, 230, 200)),
                ((16, 66, 52), (40, 140, 100), (255, 120, 90)),
                ((60, 40, 110), (130, 90, 200), (250, 240, 120)),
                ((90, 60, 10), (200, 130, 40), (60, 200, 255)),
                ((30, 30, 30), (90, 90, 100), (255, 90, 160)),
            ),
            text_color=(255, 255, 255),
            heading_face=_no_face,
            heading_upper=False,
            align="center",
            pictogram_side="left",
            backdrop="disc",
        ),
        Theme(
            name="bold",
            title="Bold",
            description="Flat saturated colour, big upper-case headings set left; the pictogram on a disc.",
            palette=(
                ((200, 30, 60), (185, 25, 55), (255, 214, 10)),
                ((20, 70, 200), (15, 60, 180), (255, 120, 60)),
                ((10, 120, 90), (8, 105, 80), (255, 230, 90)),
                ((110, 30, 170), (95, 25, 150), (80, 230, 210)),
                ((20, 20, 24), (30, 30, 36), (255, 70, 110)),
            ),
            text_color=(255, 255, 255),
            heading_face=bold_face,
            heading_upper=True,
            align="left",
            pictogram_side="right",
            backdrop="solid",
            heading_scale=0.1,
        ),
        Theme(
            name="paper",
            title="Paper",
            description="Warm paper and dark ink, centred; the pictogram on a white card.",
            palette=(
                ((250, 246, 236), (238, 229, 208), (190, 70, 50)),
                ((246, 244, 238), (228, 224, 212), (40, 90, 150)),
                ((248, 244, 230), (234, 226, 200), (60, 120, 70)),
            ),
            text_color=(38, 34, 30),
            heading_face=_no_face,
            heading_upper=False,
            align="center",
            pictogram_side="left",
            backdrop="card",
        ),
    )
}


def theme_named(name: str) -> Theme:
    """The theme ``name`` ("" is the default); ``E405-UNKNOWN_THEME`` for a name no theme has."""
    key = name.strip().lower() or DEFAULT_THEME
    theme = THEMES.get(key)
    if theme is None:
        known = ", ".join(sorted(THEMES))
        raise ReelcastError(
            errors.UNKNOWN_THEME, f"There is no visual theme {name!r}; the themes are {known}."
        )
    return theme


def background(theme: Theme, number: int, width: int, height: int) -> Image.Image:
    """The card behind scene ``number``: the theme's vertical gradient for that position."""
    top, bottom, _accent = theme.swatch(number)
    gradient = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        gradient.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return gradient.resize((width, height), Image.Resampling.BILINEAR)


@functools.cache
def preview_png(name: str, width: int = 320, height: int = 180) -> bytes:
    """A small PNG of one scene in theme ``name`` (a title, a line of text and a pictogram), for pickers."""
    from reelcast.plugins.builtin.visuals import draw_preview  # visuals draws; themes only describe

    image = draw_preview(theme_named(name), width, height)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
