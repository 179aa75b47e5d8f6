"""Emoji, Hebrew, Arabic and accented text are drawn as real glyphs, never as placeholder boxes (tofu).

A font draws a character it lacks as its ``.notdef`` glyph, the same box for every such character. So a
frame shows tofu exactly when distinct characters draw identical pixels, or when a character draws what an
unassigned code point draws.
"""

from __future__ import annotations

import unicodedata

import pytest
from PIL import Image, ImageChops, ImageDraw

from reelcast.plugins.builtin import text, visuals
from reelcast.plugins.builtin.script import ScriptScene

UNASSIGNED = "\u0378"  # no font has it, so every font draws its .notdef glyph for it
CHARACTERS = {
    "hebrew": "שלוםעבגדה",
    "arabic": "مرحبالعكن",
    "emoji": "🎬🐝✨🔴😀❤",
    "latin-and-punctuation": "éüñçø—–€•",
}
MIXED = 'Emoji 🎬🐝✨ and right to left: שלום עולם مرحبا بالعالم, then English again — 100% "quoted" C:\\path'
WIDTH, HEIGHT = 640, 360


def _title_area(title: str) -> Image.Image:
    frame = visuals.draw_scene(ScriptScene(title, "n", "", "text"), 0, WIDTH, HEIGHT)
    # One line of title; the accent bar under it is below this area.
    return frame.crop((0, int(HEIGHT * 0.08), WIDTH, int(HEIGHT * 0.24)))


def _differs(first: Image.Image, second: Image.Image) -> bool:
    return ImageChops.difference(first, second).getbbox() is not None


@pytest.mark.parametrize("characters", CHARACTERS.values(), ids=CHARACTERS.keys())
def test_each_character_draws_its_own_glyph_in_a_scene_frame(characters: str) -> None:
    tofu = _title_area(UNASSIGNED)
    drawn = {char: _title_area(char) for char in characters}
    for char, image in drawn.items():
        assert _differs(image, _title_area("")), f"{char!r} drew nothing"
        assert _differs(image, tofu), f"{char!r} drew the bundled font's placeholder box"
    # Tofu from any font in the chain would draw the same box for different characters.
    assert len({image.tobytes() for image in drawn.values()}) == len(characters)


def _glyph(face: text.Face, char: str) -> bytes:
    image = Image.new("RGBA", (300, 300))
    ImageDraw.Draw(image).text(
        (10, 10), char, font=text.truetype(face, 48), fill="white", embedded_color=True
    )
    return image.tobytes()


def test_every_character_of_a_mixed_line_comes_from_a_font_with_a_real_glyph_for_it() -> None:
    assert not any(face.covers(UNASSIGNED) for face in text.faces())
    checked = 0
    for run in text.runs(MIXED):
        notdef = _glyph(run.face, UNASSIGNED)
        for char in run.text:
            if unicodedata.category(char) in ("Zs", "Cf", "Mn"):
                continue
            assert run.face.covers(char), (char, run.face.name)
            assert _glyph(run.face, char) != notdef, (char, run.face.name)
            checked += 1
    assert checked == len([c for c in MIXED if unicodedata.category(c) not in ("Zs", "Cf", "Mn")])
    faces = {run.face.name for run in text.runs(MIXED)}
    assert {"Noto Color Emoji", "Noto Sans Hebrew", "Noto Naskh Arabic", "Pillow default"} <= faces


def _pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    data = image.convert("RGB").tobytes()
    return [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]


def _strongly_coloured(image: Image.Image) -> int:
    """Pixels that are bright and saturated: white text, its antialiasing and the gradients are not."""
    return sum(1 for pixel in _pixels(image) if max(pixel) > 180 and max(pixel) - min(pixel) > 120)


def test_emoji_are_drawn_in_colour() -> None:
    assert _strongly_coloured(_title_area("Plain title")) == 0
    red = [(r, g, b) for r, g, b in _pixels(_title_area("🔴")) if r > 180 and g < 100 and b < 100]
    assert len(red) > 100
    assert _strongly_coloured(_title_area("🐝")) > 100


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # A left-to-right line: the right-to-left words form one span read from the right.
        (
            "abc שלום مرحبا def",
            [("abc ", False), ("مرحبا", True), ("שלום ", True), (" ", False), ("def", False)],
        ),
        # A right-to-left line: Latin words keep their order, the final "!" ends up at the far left.
        ("שלום abc def!", [("!", True), ("abc def", False), ("שלום ", True)]),
        # Digits inside Arabic stay left to right.
        ("عام 2024 مرحبا", [(" مرحبا", True), ("2024", False), ("عام ", True)]),
        ("price 100% off", [("price 100% off", False)]),
    ],
)
def test_runs_of_a_mixed_line_come_in_visual_order(line: str, expected: list[tuple[str, bool]]) -> None:
    assert [(run.text, run.rtl) for run in text.runs(line)] == expected


def test_emoji_sequences_stay_in_one_font() -> None:
    for sequence in ("👩\u200d👩\u200d👧", "🇮🇱", "1\ufe0f\u20e3", "👍🏽", "❤\ufe0f"):
        (run,) = text.runs(sequence)
        assert run.face is text.emoji_face(), sequence


def test_mixed_text_wraps_inside_the_safe_margins() -> None:
    scene = ScriptScene(MIXED, "n", MIXED + " " + MIXED, "text")
    image = visuals.draw_cue_band(visuals.draw_scene(scene, 0, WIDTH, HEIGHT), MIXED)
    background = visuals.draw_cue_band(
        visuals.draw_scene(ScriptScene("", "n", "", "text"), 0, WIDTH, HEIGHT), ""
    )
    box = ImageChops.difference(image, background).getbbox()
    assert box is not None
    left, _, right, _ = box
    # The cue band itself spans 8 % to 92 %; its text and the scene's stay inside 10 % to 90 %.
    band_free = ImageChops.difference(
        image.crop((0, 0, WIDTH, int(HEIGHT * 0.7))), background.crop((0, 0, WIDTH, int(HEIGHT * 0.7)))
    ).getbbox()
    assert band_free is not None
    assert band_free[0] >= WIDTH * 0.1 - 2 and band_free[2] <= WIDTH * 0.9 + 2
    assert left >= WIDTH * 0.08 - 2 and right <= WIDTH * 0.92 + 2
    for line in visuals.wrap(MIXED, 30, WIDTH * 0.8):
        assert text.line_width(line, 30) <= WIDTH * 0.8
