"""The visual themes ``ListThemes`` reports and ``CreateJob`` checks ``Plan.style`` against: those the
installed stages offer (``Stage.themes``; the built-in visuals stage's are clean, bold and paper).

They come from the installed pipeline, so a plugin that replaces the visuals stage brings its own themes
(or none: then no style is refused here and the stage checks it itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_service_pb2
from reelcast.plugins import VisualTheme
from reelcast.plugins.host import InstalledStage


def installed_themes(pipeline: Sequence[InstalledStage]) -> list[VisualTheme]:
    """The installed stages' themes in pipeline order, each name once (the first stage's)."""
    found: dict[str, VisualTheme] = {}
    for installed in pipeline:
        for theme in installed.stage.themes:
            found.setdefault(theme.name, theme)
    return list(found.values())


def unknown_theme(style: str, pipeline: Sequence[InstalledStage]) -> ReelcastError | None:
    """``E405-UNKNOWN_THEME`` when the stages offer themes and ``style`` (not empty) names none of them."""
    themes = installed_themes(pipeline)
    name = style.strip().lower()
    if not name or not themes or any(theme.name == name for theme in themes):
        return None
    known = ", ".join(theme.name for theme in themes)
    return ReelcastError(errors.UNKNOWN_THEME, f"There is no visual theme {style!r}; the themes are {known}.")


async def theme_messages(pipeline: Sequence[InstalledStage]) -> list[job_service_pb2.Theme]:
    """The themes as ``ListThemes`` answers them, previews drawn off the event loop."""
    themes = installed_themes(pipeline)
    previews = [await asyncio.to_thread(theme.preview_png) for theme in themes]
    return [
        job_service_pb2.Theme(
            name=theme.name, title=theme.title, description=theme.description, preview_png=preview
        )
        for theme, preview in zip(themes, previews, strict=True)
    ]
