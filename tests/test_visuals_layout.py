"""The visuals stage's cards, measured on the frames it draws: pictograms that fit the scene, a layout in
which no part covers another or the caption area, the themes, and the owner's media (background, logo).

Each test runs the real visuals stage with the stage harness on a script and narration timing it writes
itself (no speech is needed to draw), at 320x180 or 180x320.
"""

from __future__ import annotations

import json
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageOps

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import MediaFile
from reelcast.plugins.builtin import ass, themes
from reelcast.plugins.testing import StageHarness
from tests.media import ink_inside, ink_mask, ink_outside, region_difference

LANDSCAPE = (320, 180)
PORTRAIT = (180, 320)
TOPIC = "Nature's wonders"
# A short test video: real topics whose words name an emoji, a list scene and a scene that names nothing.
SCENES = [
    {
        "title": "Volcanoes",
        "narration": "Lava pours out of a volcano when it erupts.",
        "visual_hint": "title",
    },
    {
        "title": "Three facts",
        "narration": "Otters hold hands. They use stones as tools. They live in rivers.",
        "visual_hint": "list",
    },
    {
        "title": "The water cycle",
        "narration": "Clouds form and rain falls back down.",
        "visual_hint": "diagram",
    },
    {"title": "Why it matters", "narration": "Everything depends on it.", "visual_hint": "quote"},
]


def _spec(size: tuple[int, int], **render: Any) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic=TOPIC),
        render=job_pb2.RenderSpec(width=size[0], height=size[1], **render),
    )


def _write_upstream(harness: StageHarness, scenes: list[dict[str, str]], language: str = "en") -> None:
    script = [{"caption": scene.get("caption", scene["narration"]), **scene} for scene in scenes]
    document = {"language": language, "scenes": script}
    harness.path("script.json").write_text(json.dumps(document), encoding="utf-8")
    timing = [{"wav": f"scene-{i}.wav", "start": 2.0 * i, "duration": 2.0} for i in range(len(scenes))]
    narration = {"audio": "a.wav", "duration": 2.0 * len(scenes), "sample_rate": 22050, "voice": "t"}
    harness.path("voice.json").write_text(json.dumps({**narration, "scenes": timing}), encoding="utf-8")
    harness.artifacts = {"script": "script.json", "narration": "voice.json"}


def _draw(
    harness: StageHarness, spec: job_pb2.JobSpec, scenes: list[dict[str, str]] = SCENES, language: str = "en"
) -> tuple[dict[str, Any], list[Image.Image]]:
    _write_upstream(harness, scenes, language)
    harness.run("visuals", spec)
    document = json.loads(harness.path("visuals.json").read_text(encoding="utf-8"))
    images = [Image.open(harness.path(relative)).convert("RGB") for relative in document["scene_images"]]
    return document, images


def _word_caption_rows(width: int, height: int) -> tuple[int, int]:
    """Where libass draws two lines of word captions (ass.placement's numbers)."""
    place = ass.placement(width, height)
    bottom = height - place.margin_bottom
    return round(bottom - 2 * place.font_size), bottom


CAPTION_MODES: dict[str, dict[str, Any]] = {
    "words": {"captions": True, "caption_style": job_pb2.CAPTION_STYLE_WORDS},
    "sentences": {"captions": True, "caption_style": job_pb2.CAPTION_STYLE_SENTENCES},
    "off": {"captions": False},
}


@pytest.mark.parametrize("theme", sorted(themes.THEMES))
@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT], ids=["16x9", "9x16"])
@pytest.mark.parametrize("captions", sorted(CAPTION_MODES))
def test_every_scene_has_a_pictogram_whose_box_overlaps_no_text_or_caption_box(
    reelcast_stage: StageHarness, theme: str, size: tuple[int, int], captions: str
) -> None:
    spec = _spec(size, **CAPTION_MODES[captions])
    spec.plan.style = theme
    document, images = _draw(reelcast_stage, spec)
    assert document["theme"] == theme
    assert len(document["scenes"]) == len(SCENES)
    for number, (record, image) in enumerate(zip(document["scenes"], images, strict=True)):
        boxes = record["boxes"]
        assert record["pictogram"]["emoji"]
        named = [boxes[key] for key in ("pictogram", "title", "text", "caption", "logo") if key in boxes]
        for first, second in combinations(named + boxes["decorations"], 2):
            assert not _overlap(first, second), (number, boxes)
        if captions != "off":
            assert "caption" in boxes
        # On pixels: the pictogram is drawn in its box, and nothing is drawn outside the published boxes.
        mask = ink_mask(image, themes.background(themes.THEMES[theme], number, *size))
        pictogram = boxes["pictogram"]
        assert ink_inside(mask, pictogram) > pictogram[2] * pictogram[3] * 0.1
        drawn = [boxes[key] for key in ("pictogram", "title", "text") if key in boxes] + boxes["decorations"]
        assert ink_outside(mask, drawn) == 0, (number, boxes)


def _overlap(first: list[int], second: list[int]) -> bool:
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_pictograms_come_from_the_scenes_own_words_then_the_topic(reelcast_stage: StageHarness) -> None:
    document, _ = _draw(reelcast_stage, _spec(LANDSCAPE))
    chosen = [(record["pictogram"]["emoji"], record["pictogram"]["source"]) for record in document["scenes"]]
    assert chosen[:3] == [("🌋", "scene"), ("🦦", "scene"), ("🌧️", "scene")]
    # "Why it matters" names nothing; the topic ("Nature's wonders") does not either: the quote hint's symbol.
    assert chosen[3] == ("💬", "hint")


def test_a_scene_that_names_nothing_takes_the_topics_pictogram(reelcast_stage: StageHarness) -> None:
    spec = _spec(LANDSCAPE)
    spec.brief.topic = "The water cycle"
    document, _ = _draw(reelcast_stage, spec, [SCENES[3]])
    assert document["scenes"][0]["pictogram"] == {"emoji": "💧", "name": "droplet", "source": "topic"}


def test_pictograms_are_matched_in_the_scripts_language(reelcast_stage: StageHarness) -> None:
    scenes = [
        {"title": "Les volcans", "narration": "La lave sort du cratère.", "visual_hint": "text"},
        {"title": "Les loutres", "narration": "Elles se tiennent la main en dormant.", "visual_hint": "text"},
    ]
    document, _ = _draw(reelcast_stage, _spec(LANDSCAPE), scenes, language="fr")
    assert [record["pictogram"]["emoji"] for record in document["scenes"]] == ["🌋", "🦦"]


def _row_means(image: Image.Image, top: int, bottom: int) -> list[float]:
    gray = image.convert("L")
    width = gray.width
    return [sum(gray.crop((0, y, width, y + 1)).tobytes()) / width for y in range(top, bottom)]


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT], ids=["16x9", "9x16"])
def test_no_decoration_runs_through_the_caption_band(
    reelcast_stage: StageHarness, size: tuple[int, int]
) -> None:
    scenes = [
        {**scene, "visual_hint": hint}
        for scene in SCENES[:1]
        for hint in ("diagram", "list", "quote", "text")
    ]
    _, images = _draw(reelcast_stage, _spec(size, **CAPTION_MODES["words"]), scenes)
    top, bottom = _word_caption_rows(*size)
    for image in images:
        # The card's background is a vertical gradient: every row of the caption band is one flat colour,
        # changing smoothly from row to row. A line or a shape drawn there breaks both.
        band = image.crop((0, top, size[0], bottom)).convert("L")
        rows = _row_means(image, top, bottom)
        for y in range(band.height):
            row = band.crop((0, y, band.width, y + 1)).tobytes()
            assert max(row) - min(row) <= 3, f"something is drawn in the caption band at y={top + y}"
        steps = [abs(b - a) for a, b in pairwise(rows)]
        assert max(steps) <= 2


def test_a_list_scene_under_captions_draws_no_bullets_without_text(reelcast_stage: StageHarness) -> None:
    # With captions on, the list's sentences are the caption: the card shows neither them nor empty bullets.
    listed = dict(SCENES[1])
    plain = {**listed, "visual_hint": "text"}
    spec = _spec(LANDSCAPE, **CAPTION_MODES["words"])
    (as_list,) = _draw(reelcast_stage, spec, [listed])[1]
    (as_text,) = _draw(reelcast_stage, spec, [plain])[1]
    assert region_difference(as_list, as_text, [0, 0, *LANDSCAPE]) < 0.01


def test_a_list_scene_shows_its_items_beside_their_bullets(reelcast_stage: StageHarness) -> None:
    document, images = _draw(reelcast_stage, _spec(LANDSCAPE, captions=False), [SCENES[1]])
    text = document["scenes"][0]["boxes"]["text"]
    mask = ink_mask(images[0], themes.background(themes.THEMES["clean"], 0, *LANDSCAPE))
    # Three items: three bands of ink rows in the text box, a bullet at each band's left edge, words after.
    x, y, width, height = text
    inked_rows = [ink_inside(mask, [x, row, width, 1]) > 0 for row in range(y, y + height)]
    bands = sum(1 for row, inked in enumerate(inked_rows) if inked and (row == 0 or not inked_rows[row - 1]))
    assert bands == 3
    bullet_column = ink_inside(mask, [x, y, max(3, width // 30), height])
    words = ink_inside(mask, [x + width // 10, y, width - width // 10, height])
    assert bullet_column > 0 and words > bullet_column * 5


@pytest.mark.parametrize("style", ["words", "sentences"])
def test_the_spoken_sentence_is_not_drawn_on_the_card_when_captions_show_it(
    reelcast_stage: StageHarness, style: str
) -> None:
    # A scene whose caption is its narration, and the same scene with no on-screen text at all.
    spoken = dict(SCENES[0])
    silent = {**spoken, "caption": ""}
    spec = _spec(LANDSCAPE, **CAPTION_MODES[style])
    (with_caption,) = _draw(reelcast_stage, spec, [spoken])[1]
    (without,) = _draw(reelcast_stage, spec, [silent])[1]
    assert region_difference(with_caption, without, [0, 0, *LANDSCAPE]) < 0.01


def test_a_caption_different_from_the_narration_is_still_shown_under_captions(
    reelcast_stage: StageHarness,
) -> None:
    scene = {**SCENES[0], "caption": "Mount Etna, Sicily"}
    document, _ = _draw(reelcast_stage, _spec(LANDSCAPE, **CAPTION_MODES["words"]), [scene])
    assert "text" in document["scenes"][0]["boxes"]


def test_the_three_themes_draw_different_cards(reelcast_stage: StageHarness) -> None:
    drawn = {}
    for name in ("clean", "bold", "paper"):
        spec = _spec(LANDSCAPE)
        spec.plan.style = name
        drawn[name] = _draw(reelcast_stage, spec, SCENES[:1])[1][0]
    for first, second in combinations(drawn.values(), 2):
        assert region_difference(first, second, [0, 0, *LANDSCAPE]) > 20
    # Paper is dark ink on light paper, the others light type on colour.
    corner = [0, 0, 8, 8]
    dark = Image.new("RGB", LANDSCAPE, (0, 0, 0))
    assert region_difference(drawn["paper"], dark, corner) > 200
    assert region_difference(drawn["clean"], dark, corner) < 120


def test_an_unknown_theme_fails_the_visuals_step_with_e405(reelcast_stage: StageHarness) -> None:
    spec = _spec(LANDSCAPE)
    spec.plan.style = "neon"
    with pytest.raises(ReelcastError) as raised:
        _draw(reelcast_stage, spec, SCENES[:1])
    assert raised.value.code == errors.UNKNOWN_THEME.code
    assert "neon" in str(raised.value)


def _pattern(path: Path, size: tuple[int, int]) -> Path:
    """A picture no theme draws: colour stripes and a checkerboard."""
    image = Image.new("RGB", size, (250, 180, 20))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 40):
        draw.rectangle((x, 0, x + 19, size[1]), fill=(20, 200, 240))
    for x in range(0, size[0], 16):
        for y in range((x // 16 % 2) * 16, size[1], 32):
            draw.rectangle((x, y, x + 15, y + 15), fill=(230, 40, 90))
    image.save(path)
    return path


def _media(path: Path, media_id: str, kind: str = "image") -> MediaFile:
    with Image.open(path) as opened:
        width, height = opened.size
    return MediaFile(media_id, kind, path, "image/png", width, height)


def test_a_scene_with_an_uploaded_background_image_shows_that_image(
    reelcast_stage: StageHarness, tmp_path: Path
) -> None:
    source = _pattern(tmp_path / "background.png", (800, 600))
    reelcast_stage.media["bg-1"] = _media(source, "bg-1")
    spec = _spec(LANDSCAPE, **CAPTION_MODES["words"])
    spec.script.add(title="Volcanoes", narration=SCENES[0]["narration"], background_media_id="bg-1")
    spec.script.add(title="Otters", narration="Otters hold hands.")
    document, images = _draw(reelcast_stage, spec, [SCENES[0], SCENES[1]])
    assert document["scenes"][0]["background_media_id"] == "bg-1"
    # The source, cover-fitted to the frame and darkened under the scrim, shows where nothing is drawn.
    fitted = ImageOps.fit(Image.open(source).convert("RGB"), LANDSCAPE, Image.Resampling.LANCZOS)
    expected = Image.blend(fitted, Image.new("RGB", LANDSCAPE, (0, 0, 0)), 0.55)
    free = [0, LANDSCAPE[1] - 16, LANDSCAPE[0], 16]  # below the caption area's bottom edge
    assert region_difference(images[0], expected, free) < 4
    assert region_difference(images[1], expected, free) > 30
    # Dark enough for white type: the scrimmed picture's brightest channel stays well under white.
    brightest = max(high for _low, high in images[0].crop((0, 170, 320, 180)).getextrema())  # type: ignore[misc]
    assert brightest < 160


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT], ids=["16x9", "9x16"])
def test_the_logo_sits_in_its_corner_of_every_scene_clear_of_text_and_captions(
    reelcast_stage: StageHarness, tmp_path: Path, size: tuple[int, int]
) -> None:
    logo_path = tmp_path / "logo.png"
    logo = Image.new("RGBA", (200, 100), (20, 220, 60, 255))
    ImageDraw.Draw(logo).rectangle((80, 20, 120, 80), fill=(255, 255, 255, 255))
    logo.save(logo_path)
    reelcast_stage.media["logo-1"] = _media(logo_path, "logo-1")
    for corner in (job_pb2.CORNER_BOTTOM_LEFT, job_pb2.CORNER_TOP_RIGHT):
        spec = _spec(size, **CAPTION_MODES["words"])
        spec.logo.media_id = "logo-1"
        spec.logo.corner = corner
        document, images = _draw(reelcast_stage, spec, SCENES[:2])
        for record, image in zip(document["scenes"], images, strict=True):
            boxes = record["boxes"]
            x, y, width, height = boxes["logo"]
            assert size[0] * 0.1 - 1 <= x and x + width <= size[0] * 0.9 + 1
            assert size[1] * 0.1 - 1 <= y and y + height <= size[1] * 0.9 + 1
            left = x < size[0] / 2
            top = y < size[1] / 2
            assert (left, top) == ((True, False) if corner == job_pb2.CORNER_BOTTOM_LEFT else (False, True))
            parts = [boxes[key] for key in ("pictogram", "title", "text", "caption") if key in boxes]
            for part in parts + boxes["decorations"]:
                assert not _overlap(boxes["logo"], part), boxes
            number = document["scenes"].index(record)
            mask = ink_mask(image, themes.background(themes.THEMES["clean"], number, *size))
            drawn = [boxes[key] for key in ("pictogram", "title", "text", "logo") if key in boxes]
            assert ink_outside(mask, drawn + boxes["decorations"]) == 0, boxes
            expected = logo.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
            placed = Image.new("RGB", size)
            placed.paste(expected, (x, y))
            assert region_difference(image, placed, boxes["logo"]) < 6


def test_a_logo_that_is_no_longer_available_fails_the_step_with_e451(reelcast_stage: StageHarness) -> None:
    spec = _spec(LANDSCAPE)
    spec.logo.media_id = "deleted-logo"
    with pytest.raises(ReelcastError) as raised:
        _draw(reelcast_stage, spec, SCENES[:1])
    assert raised.value.code == errors.MEDIA_NOT_AVAILABLE.code


def test_a_background_that_is_not_an_image_fails_the_step_with_e406(
    reelcast_stage: StageHarness, tmp_path: Path
) -> None:
    track = tmp_path / "track.wav"
    track.write_bytes(b"RIFF")
    reelcast_stage.media["audio-1"] = MediaFile("audio-1", "audio", track, "audio/wav")
    spec = _spec(LANDSCAPE)
    spec.script.add(title="Volcanoes", narration=SCENES[0]["narration"], background_media_id="audio-1")
    with pytest.raises(ReelcastError) as raised:
        _draw(reelcast_stage, spec, SCENES[:1])
    assert raised.value.code == errors.MEDIA_NOT_AN_IMAGE.code


def test_the_opening_and_the_close_show_the_topics_pictogram(reelcast_stage: StageHarness) -> None:
    # The writer's close is "In short": its words must not pick the shorts 🩳; it and the opening speak of the
    # whole video, so the topic names their picture before their own words do.
    spec = _spec(LANDSCAPE)
    spec.brief.topic = "How volcanoes form"
    scenes = [
        {"title": "How volcanoes form", "narration": "Here is how volcanoes form.", "visual_hint": "title"},
        {
            "title": "In short",
            "narration": "In short, rock melts, rises and breaks out.",
            "visual_hint": "summary",
        },
    ]
    document, _ = _draw(reelcast_stage, spec, scenes)
    assert [record["pictogram"]["emoji"] for record in document["scenes"]] == ["🌋", "🌋"]
    assert [record["pictogram"]["source"] for record in document["scenes"]] == ["topic", "topic"]
