"""The reelcast plugin API: everything a plugin author imports comes from here.

A plugin implements hooks from :mod:`reelcast.plugins.hookspecs` with ``@hookimpl`` and registers stages::

    from dataclasses import dataclass

    from reelcast.plugins import Stage, StageContext, hookimpl

    @dataclass(frozen=True)
    class WatermarkSettings:  # filled in from REELCAST_PLUGIN_WATERMARK_TEXT
        text: str = "reelcast"

    async def watermark(ctx: StageContext) -> dict[str, str]:
        settings: WatermarkSettings = ctx.settings
        ctx.report(0.5, f"Stamping {settings.text}")
        return {"watermarked": "video.mp4"}

    @hookimpl
    def register_stages(register):
        register(Stage(name="watermark", title="Watermark", weight=5, order=450, run=watermark,
                       settings=WatermarkSettings))

The names in ``__all__`` are the stable API, versioned by ``API_VERSION`` (docs/plugins.md). This package
imports the contract kernel (``reelcast.jobs``) and pluggy, never the server.
"""

from __future__ import annotations

import pluggy

from reelcast.jobs.errors import (
    ARTIFACT_MISSING,
    CANCELLED,
    CATALOGUE,
    STAGE_FAILED,
    ErrorCode,
    ReelcastError,
)
from reelcast.plugins.artifacts import (
    CaptionCue,
    Frame,
    NarrationArtifact,
    NarrationScene,
    PictogramChoice,
    SceneVisuals,
    ScriptArtifact,
    ScriptSceneArtifact,
    VisualsArtifact,
    WordTiming,
    read_artifact,
    read_narration,
    read_script,
    read_visuals,
)
from reelcast.plugins.process import ProcessResult
from reelcast.plugins.settings import StageSettingsError
from reelcast.plugins.stage import (
    OUTPUT_ARTIFACT,
    Artifacts,
    MediaFile,
    Stage,
    StageContext,
    Subtask,
    VisualTheme,
)

# The plugin API's version, MAJOR.MINOR. MINOR grows when names or optional arguments are added; MAJOR
# grows when a name in __all__ is removed or changes meaning. A plugin written for 1.x works on every 1.y
# with y >= x.
API_VERSION = "1.4"

hookimpl = pluggy.HookimplMarker("reelcast")

__all__ = [
    "API_VERSION",
    "ARTIFACT_MISSING",
    "CANCELLED",
    "CATALOGUE",
    "OUTPUT_ARTIFACT",
    "STAGE_FAILED",
    "Artifacts",
    "CaptionCue",
    "ErrorCode",
    "Frame",
    "MediaFile",
    "NarrationArtifact",
    "NarrationScene",
    "PictogramChoice",
    "ProcessResult",
    "ReelcastError",
    "SceneVisuals",
    "ScriptArtifact",
    "ScriptSceneArtifact",
    "Stage",
    "StageContext",
    "StageSettingsError",
    "Subtask",
    "VisualTheme",
    "VisualsArtifact",
    "WordTiming",
    "hookimpl",
    "read_artifact",
    "read_narration",
    "read_script",
    "read_visuals",
]
