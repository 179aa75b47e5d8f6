"""The built-in visuals stage: one image per scene, drawn with Pillow and its bundled TrueType font.

No system font is used, so a machine without fonts renders the same frames. Characters the bundled font
lacks (accents, Hebrew, Arabic, emoji) come from Noto fonts vendored with the package, and lines mixing
scripts are shaped and ordered for right-to-left text (``text.py``). All text is drawn here, into pixels,
so no caption ever passes through an ffmpeg filter and needs no escaping.

With burned-in captions the stage draws one frame per caption cue (the scene's image plus the cue in a
band at the bottom); the render stage shows each frame for exactly its cue's time through the concat
demuxer.

Artifact: ``visuals`` -> ``visuals.json`` (``{"width", "height", "scene_images": [...], "frames":
[{"image", "start", "duration", "scene"}], "cues": [{"scene", "start", "end", "text"}]}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from reelcast.jobs import errors
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import Frame, VisualsArtifact, read_visuals
from reelcast.plugins.builtin.captions import Cue, build_cues, burns_sentence_bands
from reelcast.plugins.builtin.script import ScriptScene, load_scenes
from reelcast.plugins.builtin.text import bundled_face, draw_line, line_width, paragraph_level, truetype
from reelcast.plugins.builtin.voice import load_narration

VISUALS_FILE = "visuals.json"
Color = tuple[int, int, int]
# (top, bottom, accent): neighbours in this list differ clearly in hue and brightness.
PALETTE: tuple[tuple[Color, Color, Color], ...] = (
    ((18, 32, 71), (44, 86, 160), (255, 196, 61)),
    ((84, 22, 48), (170, 58, 84), (120, 230, 200)),
    ((16, 66, 52), (40, 140, 100), (255, 120, 90)),
    ((60, 40, 110), (130, 90, 200), (250, 240, 120)),
    ((90, 60, 10), (200, 130, 40), (60, 200, 255)),
    ((30, 30, 30), (90, 90, 100), (255, 90, 160)),
)
TEXT_COLOR: Color = (255, 255, 255)


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled TrueType font at ``size`` pixels, laid out as lines are (libraqm when present)."""
    return truetype(bundled_face(), size)


def _text_width(text: str, size: int) -> float:
    return line_width(text, size)


def wrap(text: str, size: int, max_width: float) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the box is broken by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if _text_width(candidate, size) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = ""
            for char in word:
                if _text_width(current + char, size) > max_width and current:
                    lines.append(current)
                    current = ""
                current += char
        if current:
            lines.append(current)
    return lines


def fit(text: str, size: int, max_width: float, max_lines: int, min_size: int) -> tuple[list[str], int]:
    """The largest size from ``size`` down to ``min_size`` at which ``text`` wraps into ``max_lines``;
    at the smallest size, extra lines are dropped and the last kept line ends with an ellipsis."""
    while True:
        lines = wrap(text, size, max_width)
        if len(lines) <= max_lines or size <= min_size:
            break
        size = max(min_size, int(size * 0.9))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and _text_width(last + "…", size) > max_width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines, size


def _draw_lines(
    image: Image.Image, lines: list[str], size: int, center_x: float, top: float, spacing: float
) -> float:
    """Draws centred lines from ``top``; returns the y below the last line."""
    # Wrapped lines are one paragraph: they share its direction.
    base = paragraph_level(" ".join(lines))
    y = top
    for line in lines:
        draw_line(image, center_x, y, line, size, TEXT_COLOR, base)
        y += size * spacing
    return y


def _background(width: int, height: int, top: Color, bottom: Color) -> Image.Image:
    gradient = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        gradient.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return gradient.resize((width, height), Image.Resampling.BILINEAR)


def _decorate(draw: ImageDraw.ImageDraw, hint: str, width: int, height: int, accent: Color) -> None:
    unit = min(width, height)
    if hint in ("list", "summary"):
        for row in range(3):
            y = height * 0.42 + row * unit * 0.06
            draw.ellipse((width * 0.06, y, width * 0.06 + unit * 0.025, y + unit * 0.025), fill=accent)
    elif hint == "diagram":
        draw.rectangle((width * 0.06, height * 0.88, width * 0.94, height * 0.885), fill=accent)
        draw.ellipse(
            (width - unit * 0.22, unit * 0.04, width - unit * 0.04, unit * 0.22), outline=accent, width=6
        )
    elif hint == "quote":
        draw.text((width * 0.06, height * 0.3), "“", font=font(int(unit * 0.2)), fill=accent)
    else:
        draw.rectangle((0, 0, width, max(4, int(unit * 0.012))), fill=accent)


def draw_scene(scene: ScriptScene, number: int, width: int, height: int) -> Image.Image:
    """A scene's image: gradient, decoration, the title in the upper third and the on-screen caption."""
    # By position, so that neighbouring scenes never share a palette entry.
    top, bottom, accent = PALETTE[number % len(PALETTE)]
    image = _background(width, height, top, bottom)
    draw = ImageDraw.Draw(image)
    _decorate(draw, scene.visual_hint, width, height, accent)
    unit = min(width, height)
    # Title-safe area: 10 % in from each edge, as broadcast practice recommends, for every aspect.
    safe_width = width * 0.8
    y = height * 0.12
    if scene.title:
        lines, size = fit(scene.title, int(unit * 0.09), safe_width, 3, int(unit * 0.04))
        y = _draw_lines(image, lines, size, width / 2, y, 1.2) + unit * 0.04
        draw.rectangle((width * 0.4, y, width * 0.6, y + max(3, unit * 0.006)), fill=accent)
        y += unit * 0.05
    if scene.caption:
        lines, size = fit(scene.caption, int(unit * 0.055), safe_width, 4, int(unit * 0.03))
        _draw_lines(image, lines, size, width / 2, y, 1.3)
    return image


def draw_cue_band(base: Image.Image, text: str) -> Image.Image:
    """A copy of ``base`` with a caption cue in a dark band above the bottom safe margin."""
    image = base.copy()
    width, height = image.size
    unit = min(width, height)
    lines, size = fit(text, int(unit * 0.048), width * 0.8, 3, int(unit * 0.028))
    if not lines:
        return image
    line_height = size * 1.25
    band_bottom = height * 0.92
    band_top = band_bottom - line_height * len(lines) - size * 0.5
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rounded_rectangle(
        (width * 0.08, band_top, width * 0.92, band_bottom), radius=int(size * 0.4), fill=(0, 0, 0, 170)
    )
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    _draw_lines(image, lines, size, width / 2, band_top + size * 0.3, 1.25)
    return image


def _save(image: Image.Image, path: str) -> None:
    # Fast PNG: the frames are read once by ffmpeg, size on disk does not matter.
    image.save(path, format="PNG", compress_level=1)


def _frame(image: str, start: float, duration: float, scene: int) -> Frame:
    return {"image": image, "start": start, "duration": duration, "scene": scene}


def run(ctx: StageContext) -> dict[str, Any]:
    scenes = load_scenes(ctx)
    narration = load_narration(ctx)
    timing = narration["scenes"]
    if len(timing) != len(scenes):
        raise ReelcastError(errors.ARTIFACT_MISSING, "The narration does not have one entry per scene.")
    render = ctx.spec.render
    width, height = render.width or 1280, render.height or 720
    captions = render.captions
    burned = burns_sentence_bands(render)
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
    frames: list[Frame] = []
    try:
        for index, scene in enumerate(scenes):
            ctx.raise_if_cancelled()
            image = draw_scene(scene, index, width, height)
            relative = f"frames/scene-{index + 1:03d}.png"
            _save(image, str(ctx.path(relative)))
            scene_images.append(relative)
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
        "scene_images": scene_images,
        "frames": frames,
        "cues": [{"scene": c.scene, "start": c.start, "end": c.end, "text": c.text} for c in cues],
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
        )
    )
