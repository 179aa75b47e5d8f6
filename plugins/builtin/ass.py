"""The ASS subtitle document that libass draws word captions from: font, placement, outline and karaoke.

libass ships in imageio-ffmpeg's ffmpeg (the ``ass`` filter), shapes text with HarfBuzz and draws an outline
that Pillow's text cannot. The font is the bundled Noto Sans ExtraBold (``fonts/``, passed as the filter's
``fontsdir``), under its own family name, so no system font is ever picked instead; characters it lacks
(Hebrew, Arabic) are switched to the visuals stage's bundled fallback fonts with ``\\fn``, since libass
would otherwise ask fontconfig for whatever the machine has. libass draws no colour emoji.

Placement: inside the title-safe area (10 % in from each edge) of every aspect, bottom-centred; on portrait
frames (9:16) the caption's bottom stays above 75 % of the height, clear of the bottom fifth where the
platforms draw their own overlay. Lines are wrapped here, by the font's measured widths, into at most two;
a cue that does not fit is drawn smaller.

Karaoke: each word carries a ``\\k`` tag, so libass draws it white until it is spoken and gold from then on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]  # no py.typed
from PIL import ImageFont

from reelcast.plugins.builtin.captions import Cue, clock_time, estimate_words
from reelcast.plugins.builtin.text import faces

FONTS_DIR = Path(__file__).parent / "fonts"
FONT_FILE = FONTS_DIR / "NotoSans-ExtraBold.ttf"
FONT_NAME = "Noto Sans ExtraBold"
# ASS colours are &HAABBGGRR (alpha 00 is opaque).
SPOKEN_COLOUR = "&H0000D7FF"  # gold, RGB (255, 215, 0)
UNSPOKEN_COLOUR = "&H00FFFFFF"
OUTLINE_COLOUR = "&H00000000"
SHADOW_COLOUR = "&H80000000"
SPOKEN_RGB = (255, 215, 0)
SAFE_MARGIN = 0.10
# On portrait frames the caption ends above this fraction of the height (platform overlays sit below 80 %).
PORTRAIT_BOTTOM = 0.75
STYLE_NAME = "Words"


@dataclass(frozen=True)
class Placement:
    """Where and how big captions are drawn on one frame size (pixels, with PlayRes = the frame)."""

    font_size: float
    margin_x: int
    margin_bottom: int
    outline: float
    shadow: float


def is_portrait(width: int, height: int) -> bool:
    return height >= width * 1.4


def placement(width: int, height: int) -> Placement:
    unit = min(width, height)
    if is_portrait(width, height):
        size, bottom = width * 0.12, round(height * (1 - PORTRAIT_BOTTOM))
    else:
        size, bottom = unit * 0.095, round(height * SAFE_MARGIN)
    return Placement(
        font_size=round(size, 1),
        margin_x=round(width * SAFE_MARGIN),
        margin_bottom=bottom,
        outline=round(max(2.0, size * 0.09), 1),
        shadow=round(max(1.0, size * 0.04), 1),
    )


@functools.cache
def _em_per_font_size() -> float:
    # libass sizes a font so that its Windows ascent plus descent equal the ASS font size.
    font = TTFont(str(FONT_FILE), lazy=True)
    os2 = font["OS/2"]
    return float(font["head"].unitsPerEm) / float(os2.usWinAscent + os2.usWinDescent)


@functools.cache
def _measuring_font(font_size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILE), max(1, round(font_size * _em_per_font_size())))


def text_width(text: str, font_size: float) -> float:
    """The drawn width of ``text`` at ASS font size ``font_size``, in pixels."""
    return float(_measuring_font(font_size).getlength(text))


def wrap_words(words: Sequence[str], font_size: float, max_width: float) -> list[list[str]] | None:
    """Words in lines no wider than ``max_width``, or None when a word alone is wider or it takes more than
    MAX_LINES lines. Two lines are balanced: the break that makes the longer line shortest."""
    if not words or any(text_width(word, font_size) > max_width for word in words):
        return None
    if text_width(" ".join(words), font_size) <= max_width:
        return [list(words)]
    best: list[list[str]] | None = None
    best_width = float("inf")
    for cut in range(1, len(words)):
        lines = [list(words[:cut]), list(words[cut:])]
        widest = max(text_width(" ".join(line), font_size) for line in lines)
        if widest <= max_width and widest < best_width:
            best, best_width = lines, widest
    return best


def fitted_lines(words: Sequence[str], place: Placement, width: int) -> tuple[list[list[str]], float]:
    """The lines of one cue and the font size they fit at (the style's size, or smaller)."""
    size = place.font_size
    max_width = width - 2 * place.margin_x - 2 * place.outline
    while True:
        lines = wrap_words(words, size, max_width)
        if lines is not None:
            return lines, size
        if size <= place.font_size * 0.3:
            return [list(words)], size
        size = round(size * 0.9, 1)


def ass_time(seconds: float) -> str:
    return clock_time(seconds, digits=2, decimal=".", hour_width=1)


def _literal(text: str) -> str:
    # Braces would open override blocks and a backslash an escape (``\\N``): braces become parentheses
    # and a word joiner follows each backslash.
    return text.replace("\\", "\\\u2060").replace("{", "(").replace("}", ")")


@functools.cache
def _caption_coverage() -> frozenset[int]:
    font = TTFont(str(FONT_FILE), lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


def _fallback_family(char: str) -> str | None:
    """The bundled font (by family) that draws a character the caption font lacks: the visuals stage's
    chain (``text.py``), so that libass never falls back to whatever fonts the machine has."""
    if ord(char) in _caption_coverage() or not char.strip():
        return None
    return next(
        (
            face.name
            for face in faces()[1:]
            if face.path is not None and face.strike is None and face.covers(char)
        ),
        None,
    )


def ass_text(text: str) -> str:
    """Literal text for an ASS event, with ``\\fn`` switches to the bundled Hebrew and Arabic fonts
    around the characters the caption font lacks."""
    parts: list[str] = []
    current: str | None = None
    for char in text:
        family = _fallback_family(char) if not (current and not char.strip()) else current
        if family != current:
            parts.append(f"{{\\fn{family or FONT_NAME}}}")
            current = family
        parts.append(_literal(char))
    if current is not None:
        parts.append(f"{{\\fn{FONT_NAME}}}")
    return "".join(parts)


def karaoke_text(cue: Cue, lines: Sequence[Sequence[str]]) -> str:
    """The cue's words with ``\\k`` durations: each word lights up when it is spoken and stays lit."""
    words = list(cue.words) or estimate_words(cue.text, cue.start, cue.end)
    starts = [word["start"] for word in words[1:]] + [cue.end]

    def centis(moment: float) -> int:
        return max(0, round((moment - cue.start) * 100))

    # A cue with a lead-in (captions._with_lead_ins) shows before its first word is spoken: an empty
    # syllable holds the highlight back until then.
    lead = centis(words[0]["start"])
    parts: list[str] = [f"{{\\k{lead}}}"] if lead else []
    index = 0
    for line_number, line in enumerate(lines):
        for position, text in enumerate(line):
            begin = centis(words[index]["start"]) if index else lead
            duration = max(0, centis(starts[index]) - begin)
            separator = "" if position == len(line) - 1 else " "
            parts.append(f"{{\\k{duration}}}{ass_text(text)}{separator}")
            index += 1
        if line_number < len(lines) - 1:
            parts.append("\\N")
    return "".join(parts)


def _script_header(what: str, width: int, height: int) -> list[str]:
    """An ASS file's script info for a ``width`` x ``height`` frame and its styles' format line."""
    return [
        "[Script Info]",
        f"; Written by reelcast's render stage: {what}.",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 2",
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
        "Alignment, MarginL, MarginR, MarginV, Encoding",
    ]


def to_ass(cues: Sequence[Cue], width: int, height: int) -> str:
    """The whole ASS document for ``cues`` on a ``width`` x ``height`` frame."""
    place = placement(width, height)
    header = [
        *_script_header("word captions with karaoke highlighting", width, height),
        f"Style: {STYLE_NAME},{FONT_NAME},{place.font_size:g},{SPOKEN_COLOUR},{UNSPOKEN_COLOUR},"
        f"{OUTLINE_COLOUR},{SHADOW_COLOUR},0,0,0,0,100,100,0,0,1,{place.outline:g},{place.shadow:g},2,"
        f"{place.margin_x},{place.margin_x},{place.margin_bottom},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events = []
    for cue in cues:
        texts = [word["text"] for word in cue.words] or cue.text.split()
        if not texts:
            continue
        lines, size = fitted_lines(texts, place, width)
        override = f"{{\\fs{size:g}}}" if size != place.font_size else ""
        text = override + karaoke_text(cue, lines)
        events.append(f"Dialogue: 0,{ass_time(cue.start)},{ass_time(cue.end)},{STYLE_NAME},,0,0,0,,{text}")
    return "\n".join(header + events) + "\n"


# -- sentence captions over a moving picture -------------------------------------------------------------
# With motion the still frames carry no caption: libass draws the sentence cues over the moving picture, in
# the look the visuals stage burns into still frames (``visuals.draw_cue_band``): Pillow's bundled font
# (Aileron Regular, written into the job's font folder, since libass reads fonts from files only), white,
# over a rounded dark band from 8 % to 92 % of the width whose bottom sits at 92 % of the height.
SENTENCE_STYLE = "Sentences"
SENTENCE_FONT_FILE = "Aileron-Regular.otf"
SENTENCE_FONT_NAME = "Aileron"
BAND_COLOUR = "&H000000&"
BAND_ALPHA = "&H55&"  # the still band's alpha 170 of 255, as ASS transparency (255 - 170)


def caption_fonts_dir(folder: Path) -> Path:
    """``folder`` filled with every font captions may use (the bundled ones and Pillow's own), for the
    ``ass`` filter's ``fontsdir``."""
    from reelcast.plugins.builtin.text import _bundled_font_bytes

    folder.mkdir(parents=True, exist_ok=True)
    for font_file in FONTS_DIR.iterdir():
        if font_file.suffix in (".ttf", ".otf") and not (folder / font_file.name).exists():
            (folder / font_file.name).symlink_to(font_file)
    target = folder / SENTENCE_FONT_FILE
    if not target.exists():
        target.write_bytes(_bundled_font_bytes())
    return folder


@functools.cache
def _sentence_font_scale() -> float:
    """ASS font size per pixel of em for the bundled font (libass sizes by ascent plus descent)."""
    import io

    from reelcast.plugins.builtin.text import _bundled_font_bytes

    font = TTFont(io.BytesIO(_bundled_font_bytes()), lazy=True)
    hhea = font["hhea"]
    return float(hhea.ascent - hhea.descent) / float(font["head"].unitsPerEm)


def rounded_rectangle(left: float, top: float, right: float, bottom: float, radius: float) -> str:
    """An ASS drawing (``\\p1`` commands) of a rectangle with round corners (cubic quarter circles)."""
    r = min(radius, (right - left) / 2, (bottom - top) / 2)
    k = r * 0.5523  # the control distance that makes a cubic Bézier a close quarter circle
    points = [
        f"m {left + r:.1f} {top:.1f}",
        f"l {right - r:.1f} {top:.1f}",
        f"b {right - r + k:.1f} {top:.1f} {right:.1f} {top + r - k:.1f} {right:.1f} {top + r:.1f}",
        f"l {right:.1f} {bottom - r:.1f}",
        f"b {right:.1f} {bottom - r + k:.1f} {right - r + k:.1f} {bottom:.1f} {right - r:.1f} {bottom:.1f}",
        f"l {left + r:.1f} {bottom:.1f}",
        f"b {left + r - k:.1f} {bottom:.1f} {left:.1f} {bottom - r + k:.1f} {left:.1f} {bottom - r:.1f}",
        f"l {left:.1f} {top + r:.1f}",
        f"b {left:.1f} {top + r - k:.1f} {left + r - k:.1f} {top:.1f} {left + r:.1f} {top:.1f}",
    ]
    return " ".join(points)


def to_sentence_ass(cues: Sequence[Cue], width: int, height: int) -> str:
    """The ASS document drawing sentence ``cues`` in their band on a ``width`` x ``height`` frame."""
    from reelcast.plugins.builtin.visuals import fit

    scale = _sentence_font_scale()
    header = [
        *_script_header("sentence captions over a moving picture", width, height),
        f"Style: {SENTENCE_STYLE},{SENTENCE_FONT_NAME},20,{UNSPOKEN_COLOUR},{UNSPOKEN_COLOUR},"
        f"{OUTLINE_COLOUR},{SHADOW_COLOUR},0,0,0,0,100,100,0,0,1,0,0,8,0,0,0,1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    unit = min(width, height)
    events = []
    for cue in cues:
        lines, size = fit(cue.text, int(unit * 0.048), width * 0.8, 3, int(unit * 0.028))
        if not lines:
            continue
        start, end = ass_time(cue.start), ass_time(cue.end)
        # The same geometry as the still band (visuals.draw_cue_band).
        line_height = size * 1.25
        band_bottom = height * 0.92
        band_top = band_bottom - line_height * len(lines) - size * 0.5
        shape = rounded_rectangle(width * 0.08, band_top, width * 0.92, band_bottom, int(size * 0.4))
        events.append(
            f"Dialogue: 0,{start},{end},{SENTENCE_STYLE},,0,0,0,,"
            f"{{\\an7\\pos(0,0)\\bord0\\shad0\\1c{BAND_COLOUR}\\1a{BAND_ALPHA}\\p1}}{shape}"
        )
        for number, line in enumerate(lines):
            # The still's text has its ascender at ``top``; libass's top edge is the font's ascent line.
            top = band_top + size * 0.3 + number * line_height
            events.append(
                f"Dialogue: 1,{start},{end},{SENTENCE_STYLE},,0,0,0,,"
                f"{{\\an8\\pos({width / 2:.1f},{top:.1f})\\fs{size * scale:.1f}}}{ass_text_in(line)}"
            )
    return "\n".join(header + events) + "\n"


def ass_text_in(text: str) -> str:
    """Literal text for a sentence event: the bundled font, with fallbacks switched like ``ass_text``."""
    return ass_text(text).replace(f"{{\\fn{FONT_NAME}}}", f"{{\\fn{SENTENCE_FONT_NAME}}}")
