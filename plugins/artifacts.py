"""The artifact formats the built-in stages exchange, typed in one place (docs/stages.md describes them).

Each format is a JSON file in the work dir, named by an artifact key: ``script`` (written by the script
stage), ``narration`` (voice) and ``visuals`` (visuals). A stage that replaces a built-in one, or sits
between two of them, reads and writes these shapes; :func:`read_artifact` loads one with a clear E306 when
the upstream stage did not produce it. Times are seconds, paths are relative to the work dir.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError

if TYPE_CHECKING:
    from reelcast.plugins.stage import StageContext

SCRIPT = "script"
NARRATION = "narration"
VISUALS = "visuals"
# Which stage produces each artifact, for the error that names what is missing.
PRODUCERS = {SCRIPT: "script", NARRATION: "voice", VISUALS: "visuals"}


class ScriptSceneArtifact(TypedDict):
    title: str
    narration: str
    caption: str
    visual_hint: str


class ScriptArtifact(TypedDict):
    """``script.json``: the scenes to speak and draw."""

    language: str
    scenes: list[ScriptSceneArtifact]
    # What the built-in writer could not do for the brief (no key points, a target it could not fill).
    notes: NotRequired[list[str]]


class WordTiming(TypedDict):
    """One word of a scene's narration as written (split on whitespace, punctuation attached) and when it
    is spoken, in seconds from the start of the whole narration audio (not of the scene)."""

    text: str
    start: float
    end: float


class NarrationScene(TypedDict):
    wav: str
    start: float
    duration: float
    # The scene's words in order, one per word of its narration; each ends no later than the next starts. A
    # word the voice says nothing for (an emoji, a dash) spans the silence between its neighbours.
    words: NotRequired[list[WordTiming]]


class NarrationArtifact(TypedDict):
    """``voice.json``: the whole narration (``audio``) and where each scene's speech sits in it."""

    audio: str
    duration: float
    sample_rate: int
    voice: str
    scenes: list[NarrationScene]


class Frame(TypedDict):
    """One still shown from ``start`` for ``duration``; ``scene`` is -1 for frames outside the script."""

    image: str
    start: float
    duration: float
    scene: int


class CaptionCue(TypedDict):
    scene: int
    start: float
    end: float
    text: str


class PictogramChoice(TypedDict):
    emoji: str
    # The emoji's CLDR short name, and what chose it: the scene's words, the topic's, or the visual hint.
    name: str
    source: str


class SceneVisuals(TypedDict):
    """What the visuals stage drew on one scene's image: its pictogram and where each part sits, as
    ``[x, y, width, height]`` boxes in pixels (``pictogram``, ``decorations`` and, when drawn, ``title``,
    ``text``, ``logo``, and the ``caption`` area kept clear for captions)."""

    pictogram: PictogramChoice
    boxes: dict[str, Any]
    # The scene's uploaded background (an image drawn in, or a clip the render stage plays).
    background_media_id: NotRequired[str]


class VisualsArtifact(TypedDict):
    """``visuals.json``: the frames the render stage concatenates, and the caption cues."""

    width: int
    height: int
    scene_images: list[str]
    frames: list[Frame]
    cues: NotRequired[list[CaptionCue]]
    # The visual theme drawn (``Plan.style``) and one record per scene, in order.
    theme: NotRequired[str]
    scenes: NotRequired[list[SceneVisuals]]


def read_artifact(ctx: StageContext, key: str) -> dict[str, Any]:
    """The JSON document an upstream stage published under ``key``; E306 when there is none."""
    relative = ctx.artifacts.get(key)
    if not isinstance(relative, str) or not ctx.path(relative).is_file():
        producer = PRODUCERS.get(key, "an earlier")
        raise ReelcastError(errors.ARTIFACT_MISSING, f"No {key} artifact from the {producer} stage.")
    document: dict[str, Any] = json.loads(ctx.path(relative).read_text(encoding="utf-8"))
    return document


def read_script(ctx: StageContext) -> ScriptArtifact:
    return cast(ScriptArtifact, read_artifact(ctx, SCRIPT))


def read_narration(ctx: StageContext) -> NarrationArtifact:
    return cast(NarrationArtifact, read_artifact(ctx, NARRATION))


def read_visuals(ctx: StageContext) -> VisualsArtifact:
    return cast(VisualsArtifact, read_artifact(ctx, VISUALS))
