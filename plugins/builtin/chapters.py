"""Chapters at scene starts, as an ffmetadata file that the render maps into the MP4 (``-map_chapters``).

Each scene is one chapter, titled with the scene's title (or "Scene N" when it has none), from the scene's
start in the narration to the next scene's start (the last ends with the narration).
"""

from __future__ import annotations

from collections.abc import Sequence

CHAPTERS_FILE = "chapters.ffmeta"


def _escaped(text: str) -> str:
    # ffmetadata escapes '=', ';', '#', '\\' and line ends with a backslash.
    flat = " ".join(text.split())
    return "".join("\\" + char if char in "=;#\\" else char for char in flat)


def chapter_titles(titles: Sequence[str]) -> list[str]:
    return [title.strip() or f"Scene {number}" for number, title in enumerate(titles, start=1)]


def ffmetadata(titles: Sequence[str], starts: Sequence[float], total: float) -> str:
    """The ffmetadata document with one chapter per scene (times in milliseconds)."""
    lines = [";FFMETADATA1"]
    ends = [*starts[1:], total]
    for title, start, end in zip(chapter_titles(titles), starts, ends, strict=True):
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(start * 1000)}",
            f"END={max(round(start * 1000), round(end * 1000))}",
            f"title={_escaped(title)}",
        ]
    return "\n".join(lines) + "\n"
