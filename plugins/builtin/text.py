"""Lines of text drawn with a chain of fonts: Pillow's bundled font first, vendored Noto fonts for the rest.

Pillow's bundled default font (Aileron) has 113 characters: Basic Latin and a little punctuation. Every
other character is drawn from the first font in :func:`faces` whose cmap (read with fontTools) has it:
Noto Sans (accented Latin, Greek, Cyrillic, dashes), Noto Sans Hebrew, Noto Naskh Arabic, then Noto
Color Emoji. The fonts are vendored in ``fonts/`` with their licence, so drawing never needs a system
font or the network (``fonts/README.md`` says where each came from). They are vendored rather than
depended on because the one PyPI package that carries them all (``dynamic-font``, 25 MB) ships its emoji
as COLRv1, which FreeType and so Pillow cannot draw; the CBDT build Pillow draws comes from a Debian
package, which pip cannot depend on.

A line is cut into runs of one font and one bidi level. Each run is shaped by Pillow (libraqm, so Arabic
letters join and right-to-left runs read right to left), and the runs are placed in visual order.

Intentional divergence: the bidi levels come from :func:`embedding_levels`, a short implementation of
the Unicode Bidirectional Algorithm's implicit rules (W1-W7, N1-N2, I1-I2, L2) over
``unicodedata.bidirectional``. python-bidi only returns the reordered string, not the levels, and shaping
needs each run in logical order with its direction. Explicit embedding and isolate controls (U+202A-202E,
U+2066-2069) are treated as neutrals: scripts and captions do not use them.

Colour emoji are CBDT bitmaps with one strike at 109 px; FreeType draws them only at that size, so a run of
emoji is drawn at 109 px and scaled to the text size.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]  # no py.typed
from PIL import Image, ImageDraw, ImageFont, features

FONTS_DIR = Path(__file__).with_name("fonts")
Fill = tuple[int, int, int]

_RAQM = features.check_feature("raqm")
_ZWJ = "\u200d"
_EMOJI_PRESENTATION = "\ufe0f"
_STRONG = frozenset({"L", "R", "AL"})


@dataclass(frozen=True, eq=False)
class Face:
    """One font of the chain: its file (``None`` for Pillow's bundled font) and the characters it has."""

    name: str
    path: Path | None
    coverage: frozenset[int]
    strike: int | None = None  # the one pixel size of a bitmap-only font

    def covers(self, char: str) -> bool:
        return ord(char) in self.coverage


@dataclass(frozen=True)
class Run:
    """Characters in logical order that share a face and a direction."""

    text: str
    face: Face
    rtl: bool


def _coverage(source: Path | bytes) -> frozenset[int]:
    font = TTFont(io.BytesIO(source) if isinstance(source, bytes) else source, lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


@functools.cache
def _bundled_font_bytes() -> bytes:
    bundled = ImageFont.load_default(size=10)
    if not isinstance(bundled, ImageFont.FreeTypeFont) or not isinstance(bundled.font_bytes, bytes):
        raise RuntimeError("Pillow was built without FreeType, so it has no bundled TrueType font.")
    return bundled.font_bytes


_VENDORED: tuple[tuple[str, str, int | None], ...] = (
    ("Noto Sans", "NotoSans-Regular.ttf", None),
    ("Noto Sans Hebrew", "NotoSansHebrew-Regular.ttf", None),
    ("Noto Naskh Arabic", "NotoNaskhArabic-Regular.ttf", None),
    ("Noto Color Emoji", "NotoColorEmoji.ttf", 109),
)


@functools.cache
def faces() -> tuple[Face, ...]:
    """The font chain, in the order it is searched: the bundled font, then :data:`_VENDORED`."""
    bundled = Face("Pillow default", None, _coverage(_bundled_font_bytes()))
    vendored = (
        Face(name, FONTS_DIR / file, _coverage(FONTS_DIR / file), strike) for name, file, strike in _VENDORED
    )
    return (bundled, *vendored)


def bundled_face() -> Face:
    return faces()[0]


def emoji_face() -> Face:
    return faces()[-1]


@functools.cache
def bold_face() -> Face:
    """Noto Sans ExtraBold (the caption font, vendored in ``fonts/``): the bold theme's headings."""
    path = FONTS_DIR / "NotoSans-ExtraBold.ttf"
    return Face("Noto Sans ExtraBold", path, _coverage(path))


@functools.cache
def chain_from(primary: Face | None) -> tuple[Face, ...]:
    """The font chain with ``primary`` searched first (None: the default chain, :func:`faces`)."""
    chain = faces()
    return chain if primary is None or primary is chain[0] else (primary, *chain)


@functools.lru_cache(maxsize=128)
def truetype(face: Face, size: int) -> ImageFont.FreeTypeFont:
    """``face`` as a Pillow font at ``size`` pixels (at its strike size for a bitmap font)."""
    # ImageFont.load_default() lays its font out without libraqm; loading the same bytes with it lets
    # punctuation inside right-to-left text be shaped in that direction too.
    layout = ImageFont.Layout.RAQM if _RAQM else ImageFont.Layout.BASIC
    if face.path is None:
        return ImageFont.truetype(io.BytesIO(_bundled_font_bytes()), size, layout_engine=layout)
    return ImageFont.truetype(str(face.path), face.strike or size, layout_engine=layout)


def _continues_cluster(char: str) -> bool:
    """Joiners, variation selectors, combining marks, skin tones, keycaps and tags: they belong to the
    character before them and must be shaped with it."""
    code = ord(char)
    return (
        char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
    )


def face_for(
    char: str,
    previous: Face | None,
    after_joiner: bool,
    next_char: str,
    chain: tuple[Face, ...] | None = None,
) -> Face:
    """The face that draws ``char``, given the face of the character before it (from ``chain``, by default
    :func:`faces`)."""
    chain = chain or faces()
    emoji = chain[-1]
    if previous is not None and _continues_cluster(char):
        return previous
    if emoji.covers(char) and (next_char == _EMOJI_PRESENTATION or (after_joiner and previous is emoji)):
        return emoji
    neutral = unicodedata.bidirectional(char) not in _STRONG
    if neutral and previous is not None and previous is not emoji and previous.covers(char):
        return previous  # spaces and punctuation stay in the script around them
    return next((face for face in chain if face.covers(char)), chain[0])


def paragraph_level(text: str) -> int:
    """0 (left to right) or 1 (right to left), from the first strong character (rules P2, P3)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in _STRONG:
            return 0 if kind == "L" else 1
    return 0


def _as_strong(kind: str) -> str:
    return "L" if kind == "L" else "R"  # numbers count as R next to neutrals (N1)


def embedding_levels(text: str, base: int) -> list[int]:
    """The resolved bidi level of each character of one line (implicit rules only, see the module)."""
    kinds = [unicodedata.bidirectional(char) or "L" for char in text]
    kinds = [kind if kind in _STRONG | {"EN", "AN", "ES", "ET", "CS", "NSM"} else "ON" for kind in kinds]
    edge = "R" if base % 2 else "L"
    count = len(kinds)
    previous = edge
    for index, kind in enumerate(kinds):  # W1: a mark takes the type before it
        kinds[index] = previous if kind == "NSM" else kind
        previous = kinds[index]
    last_strong = edge
    for index, kind in enumerate(kinds):  # W2: European digits after Arabic letters are Arabic numbers
        if kind in _STRONG:
            last_strong = kind
        elif kind == "EN" and last_strong == "AL":
            kinds[index] = "AN"
    kinds = ["R" if kind == "AL" else kind for kind in kinds]  # W3
    for index in range(1, count - 1):  # W4: one separator between two numbers of a type
        before, kind, after = kinds[index - 1], kinds[index], kinds[index + 1]
        if before == after and (
            (kind == "ES" and before == "EN") or (kind == "CS" and before in ("EN", "AN"))
        ):
            kinds[index] = before
    start = 0
    while start < count:  # W5: terminators next to European digits (%, $) join them
        end = start
        while end < count and kinds[end] == "ET":
            end += 1
        if end > start and ((start > 0 and kinds[start - 1] == "EN") or (end < count and kinds[end] == "EN")):
            kinds[start:end] = ["EN"] * (end - start)
        start = max(end, start + 1)
    kinds = ["ON" if kind in ("ES", "ET", "CS") else kind for kind in kinds]  # W6
    last_strong = edge
    for index, kind in enumerate(kinds):  # W7: European digits after Latin letters are Latin
        if kind in ("L", "R"):
            last_strong = kind
        elif kind == "EN" and last_strong == "L":
            kinds[index] = "L"
    start = 0
    while start < count:  # N1, N2: neutrals take the direction around them, else the paragraph's
        if kinds[start] != "ON":
            start += 1
            continue
        end = start
        while end < count and kinds[end] == "ON":
            end += 1
        before = edge if start == 0 else _as_strong(kinds[start - 1])
        after = edge if end == count else _as_strong(kinds[end])
        kinds[start:end] = [before if before == after else edge] * (end - start)
        start = end
    if base % 2 == 0:  # I1, I2
        return [base + {"R": 1, "EN": 2, "AN": 2}.get(kind, 0) for kind in kinds]
    return [base + (1 if kind in ("L", "EN", "AN") else 0) for kind in kinds]


def visual_order(levels: Sequence[int]) -> list[int]:
    """Indices of items with bidi ``levels`` in the order they are shown, left to right (rule L2)."""
    order = list(range(len(levels)))
    if not levels:
        return order
    lowest_odd = min(level for level in levels) | 1
    for level in range(max(levels), lowest_odd - 1, -1):
        index = 0
        while index < len(order):
            if levels[order[index]] < level:
                index += 1
                continue
            end = index
            while end < len(order) and levels[order[end]] >= level:
                end += 1
            order[index:end] = reversed(order[index:end])
            index = end
    return order


def runs(line: str, base: int | None = None, primary: Face | None = None) -> list[Run]:
    """The runs of ``line`` in visual order, left to right; ``base`` is the paragraph's bidi level and
    ``primary`` the face searched first (None: Pillow's bundled font)."""
    chain = chain_from(primary)
    if not line:
        return []
    line = unicodedata.normalize("NFC", line)  # "e" + U+0301 becomes "é", which a font is likelier to have
    levels = embedding_levels(line, paragraph_level(line) if base is None else base)
    chosen: list[Face] = []
    for index, char in enumerate(line):
        next_char = line[index + 1] if index + 1 < len(line) else ""
        after_joiner = index > 0 and line[index - 1] == _ZWJ
        chosen.append(face_for(char, chosen[-1] if chosen else None, after_joiner, next_char, chain))
    logical: list[Run] = []
    run_levels: list[int] = []
    start = 0
    for index in range(1, len(line) + 1):
        if index < len(line) and chosen[index] is chosen[start] and levels[index] == levels[start]:
            continue
        logical.append(Run(line[start:index], chosen[start], levels[start] % 2 == 1))
        run_levels.append(levels[start])
        start = index
    return [logical[index] for index in visual_order(run_levels)]


def _direction(run: Run) -> str | None:
    if not _RAQM:
        return None
    return "rtl" if run.rtl else "ltr"


def _shaped_text(run: Run) -> str:
    # Without libraqm Pillow lays text out left to right only: reverse the characters (no joining).
    return run.text[::-1] if run.rtl and not _RAQM else run.text


def run_width(run: Run, size: int) -> float:
    font = truetype(run.face, size)
    width = font.getlength(_shaped_text(run), direction=_direction(run))
    return width * size / run.face.strike if run.face.strike else width


def line_width(line: str, size: int, primary: Face | None = None) -> float:
    """The advance width of ``line`` drawn at ``size`` pixels with the font chain (``primary`` first)."""
    return sum(run_width(run, size) for run in runs(line, primary=primary))


def _draw_bitmap_run(image: Image.Image, x: float, baseline: float, run: Run, size: int) -> None:
    """Draws a colour-bitmap run at its strike size and pastes it scaled to ``size``."""
    font = truetype(run.face, size)
    text, direction = _shaped_text(run), _direction(run)
    left, top, right, bottom = font.getbbox(text, direction=direction, anchor="ls")
    if right <= left or bottom <= top:
        return
    glyphs = Image.new("RGBA", (int(right - left), int(bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(glyphs).text(
        (-left, -top), text, font=font, anchor="ls", direction=direction, embedded_color=True
    )
    scale = size / (run.face.strike or size)
    scaled_size = (max(1, round(glyphs.width * scale)), max(1, round(glyphs.height * scale)))
    glyphs = glyphs.resize(scaled_size, Image.Resampling.LANCZOS)
    image.paste(glyphs, (round(x + left * scale), round(baseline + top * scale)), glyphs)


def draw_line(
    image: Image.Image,
    center_x: float,
    top: float,
    line: str,
    size: int,
    fill: Fill,
    base: int,
    primary: Face | None = None,
) -> None:
    """Draws ``line`` centred on ``center_x`` with the bundled font's ascender at ``top`` (``primary``
    searched first in the font chain)."""
    line_runs = runs(line, base, primary)
    widths = [run_width(run, size) for run in line_runs]
    x = center_x - sum(widths) / 2
    baseline = top + truetype(bundled_face(), size).getmetrics()[0]
    draw = ImageDraw.Draw(image)
    for run, width in zip(line_runs, widths, strict=True):
        if run.face.strike:
            _draw_bitmap_run(image, x, baseline, run, size)
        else:
            font = truetype(run.face, size)
            draw.text(
                (x, baseline), _shaped_text(run), font=font, fill=fill, anchor="ls", direction=_direction(run)
            )
        x += width
