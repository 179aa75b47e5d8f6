"""The built-in visuals stage: one image per scene, drawn with Pillow in the plan's visual theme.

No system font is used, so a machine without fonts renders the same frames. Characters the bundled font
lacks (accents, Hebrew, Arabic, emoji) come from Noto fonts vendored with the package, and lines mixing
scripts are shaped and ordered for right-to-left text (``text.py``). All text is drawn here, into pixels,
so no caption ever passes through an ffmpeg filter and needs no escaping.

Each card has the scene's title, a pictogram chosen from its words (``pictograms.py``) and, when captions
are off or the scene's on-screen text differs from what is spoken, that text (a list scene's items as
bullets). The layout (``layout.py``) keeps the title-safe area, the caption area and the logo clear, so no
part is drawn over another; the boxes are published per scene. ``Plan.style`` picks the theme
(``themes.py``), an unknown name fails the stage with ``E405-UNKNOWN_THEME``. A scene of a user-supplied
script with an image ``background_media_id`` has that image as its card, cover-fitted and darkened under a
scrim so that white type stays legible; ``JobSpec.logo`` puts the owner's logo in its corner of every card.
A media id the owner no longer has fails the stage with ``E451-MEDIA_NOT_AVAILABLE``.

With burned-in sentence captions the stage draws one frame per caption cue (the scene's image plus the cue
in a band at the bottom); the render stage shows each frame for exactly its cue's time through the concat
demuxer. ``scene_images`` never carry a caption: word captions are drawn over them by libass.

Artifact: ``visuals`` -> ``visuals.json`` (``{"width", "height", "theme", "scene_images": [...], "frames":
[{"image", "start", "duration", "scene"}], "cues": [{"scene", "start", "end", "text"}], "scenes":
[{"pictogram": {"emoji", "name", "source"}, "background_media_id"?, "boxes": {"pictogram", "title"?,
"text"?, "caption"?, "logo"?, "decorations"}}]}``; boxes are ``[x, y, width, height]`` in pixels).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import MediaFile, ReelcastError, Stage, StageContext, VisualTheme, hookimpl
from reelcast.plugins.artifacts import Frame, SceneVisuals, VisualsArtifact, read_script, read_visuals
from reelcast.plugins.builtin import layout
from reelcast.plugins.builtin.captions import Cue, build_cues, burns_sentence_bands
from reelcast.plugins.builtin.layout import Box, SceneLayout
from reelcast.plugins.builtin.pictograms import Pictogram, choose_pictogram, render_pictogram
from reelcast.plugins.builtin.script import ScriptScene, load_scenes
from reelcast.plugins.builtin.text import (
    Face,
    bundled_face,
    draw_line,
    line_width,
    paragraph_level,
    truetype,
)
from reelcast.plugins.builtin.themes import THEMES, Color, Theme, background, preview_png, theme_named
from reelcast.plugins.builtin.voice import load_narration

VISUALS_FILE = "visuals.json"
TEXT_COLOR: Color = (255, 255, 255)
# How dark an uploaded background is made under the type: the share of black laid over it.
SCRIM_OPACITY = 0.55
_ITEM_END = re.compile(r"(?<=[.!?;])\s+")
_WORDS = re.compile(r"\w+", re.UNICODE)


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled TrueType font at ``size`` pixels, laid out as lines are (libraqm when present)."""
    return truetype(bundled_face(), size)


def _text_width(text: str, size: int, face: Face | None = None) -> float:
    return line_width(text, size, face)


def wrap(text: str, size: int, max_width: float, face: Face | None = None) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the box is broken by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if _text_width(candidate, size, face) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = ""
            for char in word:
                if _text_width(current + char, size, face) > max_width and current:
                    lines.append(current)
                    current = ""
                current += char
        if current:
            lines.append(current)
    return lines


def fit(
    text: str, size: int, max_width: float, max_lines: int, min_size: int, face: Face | None = None
) -> tuple[list[str], int]:
    """The largest size from ``size`` down to ``min_size`` at which ``text`` wraps into ``max_lines``;
    at the smallest size, extra lines are dropped and the last kept line ends with an ellipsis."""
    while True:
        lines = wrap(text, size, max_width, face)
        if len(lines) <= max_lines or size <= min_size:
            break
        size = max(min_size, int(size * 0.9))
    if len(lines) > max_lines:
        lines = lines[: max(1, max_lines)]
        last = lines[-1]
        while last and _text_width(last + "…", size, face) > max_width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines, size


def balanced_wrap(text: str, size: int, max_width: float, face: Face | None = None) -> list[str]:
    """``text`` in as many lines as a greedy wrap at ``max_width`` gives, but as even as they can be (no
    lone word on a heading's last line): the narrowest width that keeps that number of lines."""
    lines = wrap(text, size, max_width, face)
    if len(lines) < 2:
        return lines
    narrow, wide = 0.0, max_width
    for _ in range(8):
        middle = (narrow + wide) / 2
        if len(wrap(text, size, middle, face)) == len(lines):
            wide = middle
        else:
            narrow = middle
    return wrap(text, size, wide, face)


def fit_box(
    text: str, size: int, box: Box, spacing: float, min_size: int, face: Face | None = None
) -> tuple[list[str], int]:
    """``text`` wrapped to ``box``'s width at the largest size whose lines fit its height."""
    while True:
        max_lines = max(1, int((box[3] - size * 0.2) // (size * spacing)))
        lines, fitted = fit(text, size, box[2], max_lines, size, face)
        if len(wrap(text, size, box[2], face)) <= max_lines or size <= min_size:
            return lines, fitted
        size = max(min_size, int(size * 0.9))


def _block_height(count: int, size: int, spacing: float) -> int:
    if not count:
        return 0
    ascent, descent = font(size).getmetrics()
    return round((count - 1) * size * spacing + ascent + descent)


def _draw_block(
    image: Image.Image,
    lines: list[str],
    size: int,
    box: Box,
    *,
    align: str,
    spacing: float,
    color: Color,
    face: Face | None = None,
    indent: float = 0.0,
) -> Box:
    """Draws ``lines`` from the top of ``box``, centred or set left; returns the box the lines take."""
    # Wrapped lines are one paragraph: they share its direction.
    base = paragraph_level(" ".join(lines))
    x, y, width, _height = box
    widths = [_text_width(line, size, face) for line in lines]
    lefts: list[float] = []
    for line, line_width_ in zip(lines, widths, strict=True):
        left = x + indent if align == "left" else x + (width - line_width_) / 2
        draw_line(
            image, left + line_width_ / 2, y + len(lefts) * size * spacing, line, size, color, base, face
        )
        lefts.append(left)
    if not lines:
        return (x, y, 0, 0)
    left = min(lefts)
    right = max(a + b for a, b in zip(lefts, widths, strict=True))
    return (round(left), y, round(right - left) + 1, _block_height(len(lines), size, spacing))


def _draw_lines(
    image: Image.Image, lines: list[str], size: int, center_x: float, top: float, spacing: float
) -> float:
    """Draws white centred lines from ``top``; returns the y below the last line (the caption band)."""
    base = paragraph_level(" ".join(lines))
    y = top
    for line in lines:
        draw_line(image, center_x, y, line, size, TEXT_COLOR, base)
        y += size * spacing
    return y


def _words(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def body_text(scene: ScriptScene, captions: bool) -> str:
    """The scene's on-screen text: its caption, unless captions are on and it says what is spoken (the
    caption area shows that already, and the same sentence twice on one frame reads as a bug)."""
    shown, spoken = _words(scene.caption), _words(scene.narration)
    if captions and shown and (shown in spoken or spoken in shown):
        return ""
    return scene.caption.strip()


def list_items(text: str) -> list[str]:
    """A list scene's items: its sentences (or clauses after ``;``), at most four."""
    items = [item.strip().rstrip(";") for item in _ITEM_END.split(" ".join(text.split())) if item.strip()]
    return items[:4] if len(items) >= 2 else []


def cover_fit(picture: Image.Image, width: int, height: int) -> Image.Image:
    """``picture`` scaled to cover ``width`` x ``height`` and cropped around its centre."""
    return ImageOps.fit(picture.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def scrimmed(picture: Image.Image) -> Image.Image:
    return Image.blend(picture, Image.new("RGB", picture.size, (0, 0, 0)), SCRIM_OPACITY)


@dataclass
class DrawnScene:
    image: Image.Image
    pictogram: Pictogram
    layout: SceneLayout
    text: Box | None
    title: Box | None
    decorations: list[Box] = field(default_factory=list)

    def boxes(self) -> dict[str, Any]:
        found: dict[str, Any] = {"pictogram": list(self.layout.pictogram), "decorations": []}
        for key, box in (
            ("title", self.title),
            ("text", self.text),
            ("caption", self.layout.caption),
            ("logo", self.layout.logo),
        ):
            if box is not None:
                found[key] = list(box)
        found["decorations"] = [list(box) for box in self.decorations]
        return found


def _draw_pictogram(image: Image.Image, pictogram: Pictogram, box: Box, theme: Theme, accent: Color) -> None:
    x, y, side, _ = box
    if side <= 0:
        return
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if theme.backdrop == "disc":
        draw.ellipse((x, y, x + side - 1, y + side - 1), fill=(255, 255, 255, 40))
    elif theme.backdrop == "solid":
        draw.ellipse((x, y, x + side - 1, y + side - 1), fill=(*accent, 255))
    else:
        radius = max(2, side // 12)
        border = max(1, side // 90)
        draw.rounded_rectangle(
            (x, y, x + side - 1, y + side - 1),
            radius=radius,
            fill=(255, 255, 255, 255),
            outline=(*accent, 255),
            width=border,
        )
    glyph_side = round(side * 0.66)
    glyph = render_pictogram(pictogram.emoji, glyph_side)
    overlay.alpha_composite(glyph, (x + (side - glyph_side) // 2, y + (side - glyph_side) // 2))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _draw_items(
    image: Image.Image, items: list[str], box: Box, color: Color, accent: Color, *, centre: bool
) -> Box:
    """A list scene's items, each after a bullet in the accent colour, set left in ``box`` (``centre``:
    centred in its height)."""
    unit = min(image.size)
    spacing = 1.25
    for size in range(int(unit * 0.062), int(unit * 0.028) - 1, -2):
        indent = size * 1.1
        wrapped = [wrap(item, size, box[2] - indent) for item in items]
        height = sum(_block_height(len(lines), size, spacing) for lines in wrapped) + size * 0.5 * len(items)
        if height <= box[3]:
            break
    draw = ImageDraw.Draw(image)
    y = float(box[1]) + (max(0, (box[3] - height) // 2) if centre else 0)
    extents: list[Box] = []
    for lines in wrapped:
        lines = lines or [""]
        dot = size * 0.36
        center_y = y + font(size).getmetrics()[0] * 0.62
        draw.ellipse((box[0], center_y - dot / 2, box[0] + dot, center_y + dot / 2), fill=accent)
        block = _draw_block(
            image,
            lines,
            size,
            (box[0], round(y), box[2], box[3]),
            align="left",
            spacing=spacing,
            color=color,
            indent=indent,
        )
        extents.append((box[0], block[1], block[0] + block[2] - box[0], block[3]))
        y += block[3] + size * 0.5
        if y > box[1] + box[3]:
            break
    left, top = min(e[0] for e in extents), min(e[1] for e in extents)
    bottom = max(e[1] + e[3] for e in extents)
    right = max(e[0] + e[2] for e in extents)
    return (left, top, right - left, min(bottom, box[1] + box[3]) - top)


def compose_scene(
    scene: ScriptScene,
    number: int,
    width: int,
    height: int,
    *,
    theme: Theme | None = None,
    topic: str = "",
    caption: Box | None = None,
    captions: bool = False,
    backdrop: Image.Image | None = None,
    logo: Image.Image | None = None,
    corner: int = job_pb2.CORNER_TOP_RIGHT,
    language: str = "en",
) -> DrawnScene:
    """One scene's card in ``theme``, with its boxes: see the module docstring."""
    theme = theme or theme_named("")
    _top, _bottom, accent = theme.swatch(number)
    if backdrop is not None:
        image = scrimmed(cover_fit(backdrop, width, height))
        color = TEXT_COLOR
    else:
        image = background(theme, number, width, height)
        color = theme.text_color
    unit = min(width, height)
    logo_box = layout.logo_box(width, height, corner, logo.size, caption) if logo is not None else None
    area = layout.content_area(width, height, caption, logo_box)
    title_width = area[2] - 2 * layout.title_inset(width, height, logo_box)
    face = theme.heading_face()
    title_lines: list[str] = []
    title_size = 0
    if scene.title:
        heading = scene.title.upper() if theme.heading_upper else scene.title
        title_lines, title_size = fit(
            heading, int(unit * theme.heading_scale), title_width, 2, int(unit * 0.045), face
        )
        if not title_lines[-1].endswith("…"):
            title_lines = balanced_wrap(heading, title_size, title_width, face)
    body = body_text(scene, captions)
    pictogram = choose_pictogram(
        scene.title, f"{scene.caption} {scene.narration}", topic, scene.visual_hint, language
    )
    plan = layout.scene_layout(
        width,
        height,
        area=area,
        title_height=_block_height(len(title_lines), title_size, 1.15),
        has_text=bool(body),
        pictogram_side=theme.pictogram_side,
        caption=caption,
        logo=logo_box,
    )
    title_box: Box | None = None
    decorations: list[Box] = []
    if plan.title is not None:
        title_box = _draw_block(
            image,
            title_lines,
            title_size,
            plan.title,
            align=theme.align,
            spacing=1.15,
            color=color,
            face=face,
        )
        bar_height = max(3, round(unit * 0.008))
        bar_width = round(area[2] * 0.16)
        bar_x = plan.title[0] if theme.align == "left" else plan.title[0] + (plan.title[2] - bar_width) // 2
        bar_y = plan.title[1] + plan.title[3] + round(unit * 0.016)
        bar = (bar_x, bar_y, bar_width, bar_height)
        ImageDraw.Draw(image).rectangle(
            (bar_x, bar_y, bar_x + bar_width - 1, bar_y + bar_height - 1), fill=accent
        )
        decorations.append(bar)
    _draw_pictogram(image, pictogram, plan.pictogram, theme, accent)
    text_box: Box | None = None
    if body and plan.text is not None and plan.text[3] > 0:
        items = list_items(body) if scene.visual_hint in ("list", "summary") else []
        if items:
            text_box = _draw_items(image, items, plan.text, color, accent, centre=not is_centered_text(plan))
        else:
            lines, size = fit_box(body, int(unit * 0.062), plan.text, 1.3, int(unit * 0.03))
            # Beside the pictogram the text is centred on it vertically; under it, it starts at the top.
            spare = plan.text[3] - _block_height(len(lines), size, 1.3)
            offset = 0 if is_centered_text(plan) else max(0, spare // 2)
            drawn = _draw_block(
                image,
                lines,
                size,
                (plan.text[0], plan.text[1] + offset, plan.text[2], plan.text[3] - offset),
                align="left" if theme.align == "left" or not is_centered_text(plan) else "center",
                spacing=1.3,
                color=color,
            )
            text_box = drawn
    if logo is not None and logo_box is not None:
        fitted = logo.convert("RGBA").resize((logo_box[2], logo_box[3]), Image.Resampling.LANCZOS)
        canvas = image.convert("RGBA")
        canvas.alpha_composite(fitted, (logo_box[0], logo_box[1]))
        image = canvas.convert("RGB")
    return DrawnScene(image, pictogram, plan, text_box, title_box, decorations)


def is_centered_text(plan: SceneLayout) -> bool:
    """Text under a pictogram (portrait) is centred; beside it, it is set against the pictogram."""
    return plan.text is not None and plan.text[1] > plan.pictogram[1] + plan.pictogram[3] - 1


def draw_scene(
    scene: ScriptScene, number: int, width: int, height: int, theme: Theme | None = None
) -> Image.Image:
    """A scene's image without captions, logo or media: its card in ``theme`` (the default: clean)."""
    return compose_scene(scene, number, width, height, theme=theme).image


def draw_preview(theme: Theme, width: int, height: int) -> Image.Image:
    """The sample card ``ListThemes`` shows for ``theme``."""
    # The title and the pictogram only (as under captions): text at a picker's size would be unreadable.
    scene = ScriptScene("Volcanoes", "Lava flows from the crater.", "Lava flows from the crater.", "text")
    return compose_scene(scene, 0, width, height, theme=theme, topic="Volcanoes", captions=True).image


def draw_cue_band(base: Image.Image, text: str) -> Image.Image:
    """A copy of ``base`` with a caption cue in a dark band above the bottom safe margin."""
    image = base.copy()
    width, height = image.size
    lines, size = fit(
        text,
        layout.band_font_size(width, height),
        width * 0.8,
        layout.BAND_LINES,
        int(min(width, height) * 0.028),
    )
    if not lines:
        return image
    line_height = size * layout.BAND_LINE_SPACING
    band_bottom = height * layout.BAND_BOTTOM
    band_top = band_bottom - line_height * len(lines) - size * 0.5
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rounded_rectangle(
        (width * 0.08, band_top, width * 0.92, band_bottom), radius=int(size * 0.4), fill=(0, 0, 0, 170)
    )
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    _draw_lines(image, lines, size, width / 2, band_top + size * 0.3, layout.BAND_LINE_SPACING)
    return image


def _save(image: Image.Image, path: str) -> None:
    # Fast PNG: the frames are read once by ffmpeg, size on disk does not matter.
    image.save(path, format="PNG", compress_level=1)


def _frame(image: str, start: float, duration: float, scene: int) -> Frame:
    return {"image": image, "start": start, "duration": duration, "scene": scene}


def _open_image(media: MediaFile, use: str) -> Image.Image:
    """The uploaded image ``media`` decoded, for ``use`` ("the logo", "scene 2's background")."""
    if media.kind != "image":
        raise ReelcastError(
            errors.MEDIA_NOT_AN_IMAGE,
            f"The media {media.media_id!r} for {use} is a {media.kind}, not an image.",
        )
    try:
        with Image.open(media.path) as opened:
            opened.load()
            return opened.copy()
    except (OSError, UnidentifiedImageError) as error:
        raise ReelcastError(
            errors.MEDIA_NOT_AN_IMAGE, f"The media {media.media_id!r} for {use} cannot be read as an image."
        ) from error


def _backgrounds(ctx: StageContext, count: int) -> list[tuple[str, Image.Image | None]]:
    """Each scene's ``background_media_id`` (a user-supplied script's, by position) and its image: None
    for no background and for a clip, which the render stage plays instead."""
    given = list(ctx.spec.script) if len(ctx.spec.script) == count else []
    found: list[tuple[str, Image.Image | None]] = []
    for number, scene in enumerate(given, start=1):
        media_id = scene.background_media_id
        if not media_id:
            found.append(("", None))
            continue
        media = ctx.media(media_id)
        use = f"scene {number}'s background"
        found.append((media_id, None if media.kind == "clip" else _open_image(media, use)))
    return found or [("", None)] * count


def run(ctx: StageContext) -> dict[str, Any]:
    theme = theme_named(ctx.spec.plan.style)
    scenes = load_scenes(ctx)
    language = read_script(ctx).get("language") or ctx.spec.brief.language or "en"
    narration = load_narration(ctx)
    timing = narration["scenes"]
    if len(timing) != len(scenes):
        raise ReelcastError(errors.ARTIFACT_MISSING, "The narration does not have one entry per scene.")
    render = ctx.spec.render
    width, height = render.width or 1280, render.height or 720
    captions = render.captions
    burned = burns_sentence_bands(render)
    caption = layout.caption_box(render, width, height)
    logo_spec = ctx.spec.logo
    logo = _open_image(ctx.media(logo_spec.media_id), "the logo") if logo_spec.media_id else None
    corner = logo_spec.corner or job_pb2.CORNER_TOP_RIGHT
    backgrounds = _backgrounds(ctx, len(scenes))
    cues: list[Cue] = (
        build_cues(
            [scene.narration for scene in scenes],
            [entry["start"] for entry in timing],
            [entry["duration"] for entry in timing],
        )
        if captions
        else []
    )
    frames_dir = ctx.path("frames")
    frames_dir.mkdir(exist_ok=True)
    total_images = len(scenes) + (len(cues) if burned else 0)
    drawn = 0
    scene_images: list[str] = []
    scene_records: list[SceneVisuals] = []
    frames: list[Frame] = []
    try:
        for index, scene in enumerate(scenes):
            ctx.raise_if_cancelled()
            media_id, backdrop = backgrounds[index]
            card = compose_scene(
                scene,
                index,
                width,
                height,
                theme=theme,
                topic=ctx.spec.brief.topic,
                caption=caption,
                captions=captions,
                backdrop=backdrop,
                logo=logo,
                corner=corner,
                language=language,
            )
            image = card.image
            relative = f"frames/scene-{index + 1:03d}.png"
            _save(image, str(ctx.path(relative)))
            scene_images.append(relative)
            record: SceneVisuals = {
                "pictogram": {
                    "emoji": card.pictogram.emoji,
                    "name": card.pictogram.name,
                    "source": card.pictogram.source,
                },
                "boxes": card.boxes(),
            }
            if media_id:
                record["background_media_id"] = media_id
            scene_records.append(record)
            drawn += 1
            ctx.report(drawn / total_images, f"Drew scene {index + 1} of {len(scenes)}")
            entry = timing[index]
            if not burned:
                frames.append(_frame(relative, entry["start"], entry["duration"], index))
                continue
            for cue in (cue for cue in cues if cue.scene == index):
                ctx.raise_if_cancelled()
                cue_relative = f"frames/cue-{len(frames) + 1:04d}.png"
                _save(draw_cue_band(image, cue.text), str(ctx.path(cue_relative)))
                frames.append(_frame(cue_relative, cue.start, cue.end - cue.start, index))
                drawn += 1
                ctx.report(drawn / total_images, f"Drew caption {len(frames)} of {len(cues)}")
    except OSError as error:
        detail = f"Could not write a scene image: {error.strerror}"
        raise ReelcastError(errors.VISUALS_FAILED, detail) from error
    document: VisualsArtifact = {
        "width": width,
        "height": height,
        "theme": theme.name,
        "scene_images": scene_images,
        "frames": frames,
        "cues": [{"scene": c.scene, "start": c.start, "end": c.end, "text": c.text} for c in cues],
        "scenes": scene_records,
    }
    ctx.path(VISUALS_FILE).write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    ctx.report(1.0, f"{len(frames)} frames drawn")
    return {"visuals": VISUALS_FILE}


def load_visuals(ctx: StageContext) -> VisualsArtifact:
    return read_visuals(ctx)


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="visuals",
            title="Visuals",
            weight=20,
            order=300,
            run=run,
            description="Draws one image per scene (and per caption cue when captions are burned in).",
            themes=tuple(
                VisualTheme(
                    theme.name, theme.title, theme.description, functools.partial(preview_png, theme.name)
                )
                for theme in THEMES.values()
            ),
        )
    )
