"""The reelcast plugin API: everything a plugin author imports comes from here.

A plugin implements hooks from :mod:`reelcast.plugins.hookspecs` with ``@hookimpl`` and registers stages::

    from reelcast.plugins import Stage, StageContext, hookimpl

    async def watermark(ctx: StageContext) -> dict[str, str]:
        ctx.report(0.5, "Stamping")
        return {"watermarked": "video.mp4"}

    @hookimpl
    def register_stages(register):
        register(Stage(name="watermark", title="Watermark", weight=5, order=450, run=watermark))
"""

from __future__ import annotations

import pluggy

from reelcast.jobs.errors import CATALOGUE, ErrorCode, ReelcastError
from reelcast.plugins.process import ProcessResult
from reelcast.plugins.stage import OUTPUT_ARTIFACT, Artifacts, Stage, StageContext

hookimpl = pluggy.HookimplMarker("reelcast")

__all__ = [
    "CATALOGUE",
    "OUTPUT_ARTIFACT",
    "Artifacts",
    "ErrorCode",
    "ProcessResult",
    "ReelcastError",
    "Stage",
    "StageContext",
    "hookimpl",
]
