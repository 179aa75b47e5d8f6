"""A branded intro card before every reelcast video: a stage between Visuals and Rendering.

The built-in render stage takes its frames from the ``visuals`` artifact and its audio and length from the
``narration`` artifact (both documented in reelcast's docs/stages.md). So this stage does not touch render:
it publishes new versions of both artifacts, with the card as the first frame and the narration delayed by
the card's length. A later stage's artifact of the same name wins, so render and postprocess read these.

Intentional divergence: the card is pre-roll (the narration waits for it) rather than drawn over the first
scene, so that no title or caption is ever hidden behind it.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from reelcast.plugins import (
    Frame,
    NarrationArtifact,
    Stage,
    StageContext,
    VisualsArtifact,
    hookimpl,
    read_narration,
    read_visuals,
)

__version__ = "0.1.0"

STAGE_NAME = "intro-card"
# After the built-in visuals (300), before render (400).
ORDER = 350
WEIGHT = 5.0
CARD_DIR = "intro-card"
CARD_IMAGE = f"{CARD_DIR}/card.png"
NARRATION_WAV = f"{CARD_DIR}/narration.wav"
NARRATION_FILE = f"{CARD_DIR}/voice.json"
VISUALS_FILE = f"{CARD_DIR}/visuals.json"
DEFAULT_BRAND = "reelcast"
DEFAULT_SECONDS = 2.0
# (background top, background bottom, accent)
BRAND_COLORS = ((12, 12, 20), (36, 24, 64), (255, 176, 32))


@dataclass(frozen=True)
class IntroCardSettings:
    """The stage's settings. reelcast fills them in from ``REELCAST_PLUGIN_INTRO_CARD_SECONDS`` and
    ``REELCAST_PLUGIN_INTRO_CARD_BRAND`` (docs/plugins.md, plugin configuration); the stage reads no
    environment itself."""

    # How long the card is shown, held to 0.5 to 10 s.
    seconds: float = DEFAULT_SECONDS
    brand: str = DEFAULT_BRAND

    @property
    def card_seconds(self) -> float:
        return min(10.0, max(0.5, self.seconds))

    @property
    def brand_text(self) -> str:
        return self.brand.strip() or DEFAULT_BRAND


def draw_card(brand_text: str, topic: str, width: int, height: int) -> Image.Image:
    """The card: a dark gradient, the brand in the accent colour, the topic below an accent rule."""
    top, bottom, accent = BRAND_COLORS
    gradient = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        gradient.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    image = gradient.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    brand_font = ImageFont.load_default(size=max(12, int(unit * 0.12)))
    draw.text((width / 2, height * 0.38), brand_text.upper(), font=brand_font, fill=accent, anchor="mm")
    rule_y = height * 0.5
    draw.rectangle((width * 0.3, rule_y, width * 0.7, rule_y + max(3, unit * 0.008)), fill=accent)
    topic_font = ImageFont.load_default(size=max(10, int(unit * 0.055)))
    text = topic if topic_font.getlength(topic) <= width * 0.8 else _shorten(topic, topic_font, width * 0.8)
    draw.text((width / 2, height * 0.6), text, font=topic_font, fill=(255, 255, 255), anchor="mm")
    return image


def _shorten(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float) -> str:
    while text and font.getlength(text + "…") > max_width:
        text = text[:-1]
    return text.rstrip() + "…"


def delay_wav(source: Path, target: Path, seconds: float) -> float:
    """Writes ``source`` with ``seconds`` of silence before it; returns the new duration."""
    with wave.open(str(source), "rb") as reader:
        params = reader.getparams()
        pcm = reader.readframes(params.nframes)
    silence = b"\x00" * (round(seconds * params.framerate) * params.sampwidth * params.nchannels)
    with wave.open(str(target), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(silence + pcm)
    with wave.open(str(target), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def run(ctx: StageContext) -> dict[str, Any]:
    settings: IntroCardSettings = ctx.settings
    narration = read_narration(ctx)
    visuals = read_visuals(ctx)
    seconds = settings.card_seconds
    width, height = int(visuals["width"]), int(visuals["height"])
    ctx.path(CARD_DIR).mkdir(exist_ok=True)

    ctx.raise_if_cancelled()
    draw_card(settings.brand_text, ctx.spec.brief.topic, width, height).save(
        ctx.path(CARD_IMAGE), format="PNG"
    )
    ctx.report(0.4, "Drew the intro card")

    ctx.raise_if_cancelled()
    duration = delay_wav(ctx.path(narration["audio"]), ctx.path(NARRATION_WAV), seconds)
    ctx.report(0.8, f"Narration starts after {seconds:g} s")

    delayed_narration: NarrationArtifact = {
        **narration,
        "audio": NARRATION_WAV,
        "duration": duration,
        "scenes": [{**scene, "start": scene["start"] + seconds} for scene in narration["scenes"]],
    }
    card_frame: Frame = {"image": CARD_IMAGE, "start": 0.0, "duration": seconds, "scene": -1}
    delayed_visuals: VisualsArtifact = {
        **visuals,
        "frames": [card_frame] + [{**f, "start": f["start"] + seconds} for f in visuals["frames"]],
        "cues": [
            {**c, "start": c["start"] + seconds, "end": c["end"] + seconds} for c in visuals.get("cues", [])
        ],
    }
    ctx.path(NARRATION_FILE).write_text(json.dumps(delayed_narration, indent=2), encoding="utf-8")
    ctx.path(VISUALS_FILE).write_text(json.dumps(delayed_visuals, indent=2), encoding="utf-8")
    ctx.log.info("intro card of %.1f s before %d frames", seconds, len(visuals["frames"]))
    ctx.report(1.0, "Intro card ready")
    return {"visuals": VISUALS_FILE, "narration": NARRATION_FILE, "intro_card": CARD_IMAGE}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name=STAGE_NAME,
            title="Intro card",
            weight=WEIGHT,
            order=ORDER,
            run=run,
            settings=IntroCardSettings,
            description="Puts a branded title card before the video, drawn with Pillow.",
        )
    )
