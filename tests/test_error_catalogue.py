"""docs/errors.md is the catalogue of reelcast.jobs.errors, rendered; the two never drift apart."""

from __future__ import annotations

from pathlib import Path

from reelcast.jobs.errors import CATALOGUE, render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def test_docs_errors_md_equals_the_generated_catalogue() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        "docs/errors.md is stale: run `python -m reelcast.jobs.errors > docs/errors.md`"
    )


def test_every_builtin_stage_error_is_catalogued_with_remediation() -> None:
    for code in (
        "E101-BRIEF_INVALID", "E102-SCRIPT_INVALID", "E103-LANGUAGE_UNSUPPORTED", "E201-VOICE_UNKNOWN",
        "E202-TTS_FAILED", "E302-FFMPEG_NOT_FOUND", "E304-FFMPEG_RUNTIME", "E306-ARTIFACT_MISSING",
        "E308-RENDER_TIMEOUT", "E310-OUTPUT_INVALID", "E311-CANCELLED", "E401-VISUALS_FAILED",
    ):  # fmt: skip
        entry = CATALOGUE[code]
        assert entry.message and entry.remediation
        assert f"`{code}`" in DOCS.read_text(encoding="utf-8")


def test_builtin_stages_raise_only_catalogued_codes() -> None:
    import re

    sources = Path(__file__).resolve().parents[1] / "plugins" / "builtin"
    from reelcast.jobs import errors

    for source in sources.glob("*.py"):
        for name in re.findall(r"errors\.([A-Z_]+)", source.read_text(encoding="utf-8")):
            assert isinstance(getattr(errors, name), errors.ErrorCode), (source.name, name)
