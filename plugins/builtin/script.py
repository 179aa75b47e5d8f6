"""The built-in script stage: the offline writer (writer.py) turns a brief into scenes.

The writer needs no model and no network, and is deterministic: the same brief gives the same script. A
user-supplied script skips the writer and is validated instead. What the writer could not do (no key
points, a target it could not fill) is logged, reported in the stage's last message and kept as the
artifact's ``notes``.

When the operator sets a language model's base URL (``REELCAST_PLUGIN_SCRIPT_BASE_URL``, see
ScriptSettings in language_model.py), the model writes the scenes instead of the writer. Its failures are
the job's errors, never a quiet fallback to the writer.

Artifact: ``script`` -> ``script.json`` (``{"language", "scenes": [{title, narration, caption,
visual_hint}], "notes"?}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import DEFAULT_DURATION_SECONDS, PACING_RATE_FACTOR
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import ScriptArtifact, ScriptSceneArtifact, read_script

# The stage's settings are the language model's (language_model.py), REELCAST_PLUGIN_SCRIPT_<FIELD>.
from reelcast.plugins.builtin.language_model import ScriptSettings as ScriptSettings
from reelcast.plugins.builtin.language_model import write_scenes
from reelcast.plugins.builtin.voices import engine_of
from reelcast.plugins.builtin.writer import ScriptScene as ScriptScene  # the stage's scene type (visuals.py)
from reelcast.plugins.builtin.writer import Writer, WrittenScript

SCRIPT_FILE = "script.json"
MAX_NARRATION_CHARS = 2000
MAX_SCENES = 200
_WORD = re.compile(r"\w", re.UNICODE)


def speaking_rate(spec: job_pb2.JobSpec) -> int:
    """The words per minute the voice speaks at: the voice's rate adjusted by the plan's pacing."""
    base = spec.voice.rate or 160
    return max(80, min(450, round(base * PACING_RATE_FACTOR.get(spec.plan.pacing, 1.0))))


def count_words(text: str) -> int:
    return len(text.split())


def write_script(spec: job_pb2.JobSpec) -> WrittenScript:
    """The built-in writer's script for ``spec`` (with its defaults filled in); see writer.py."""
    brief = spec.brief
    if not _WORD.search(brief.topic):
        raise ReelcastError(errors.BRIEF_INVALID, "The topic has no letters or digits to write about.")
    return Writer(
        topic=brief.topic,
        audience=brief.audience,
        goal=brief.goal,
        tone=brief.tone,
        language=brief.language or "en",
        key_points=list(brief.key_points),
        target_seconds=spec.plan.target_duration_seconds or DEFAULT_DURATION_SECONDS,
        rate=speaking_rate(spec),
        engine=engine_of(spec.voice.name, brief.language),
    ).write()


def validate_user_script(spec: job_pb2.JobSpec) -> list[ScriptScene]:
    """Checks a user-supplied script and fills each scene's defaults (caption defaults to the narration)."""
    if len(spec.script) > MAX_SCENES:
        raise ReelcastError(errors.SCRIPT_INVALID, f"The script has {len(spec.script)} scenes; at most 200.")
    scenes: list[ScriptScene] = []
    for number, scene in enumerate(spec.script, start=1):
        narration = scene.narration.strip()
        if not narration:
            raise ReelcastError(errors.SCRIPT_INVALID, f"Scene {number} has no narration to speak.")
        if len(narration) > MAX_NARRATION_CHARS:
            raise ReelcastError(
                errors.SCRIPT_INVALID, f"Scene {number}'s narration is longer than {MAX_NARRATION_CHARS}."
            )
        scenes.append(
            ScriptScene(
                title=scene.title.strip(),
                narration=narration,
                caption=scene.caption.strip() or narration,
                visual_hint=scene.visual_hint.strip() or "text",
            )
        )
    return scenes


def load_scenes(ctx: StageContext) -> list[ScriptScene]:
    """The script written by this stage (or a replacement that follows the same artifact contract)."""
    return [ScriptScene(**scene) for scene in read_script(ctx)["scenes"]]


# Any: the writer's artifacts, or with a language model the coroutine that makes them (the stage runner awaits
# what a plain stage function returns); callers of the writer path keep reading it as a dict.
def run(ctx: StageContext) -> Any:
    settings: ScriptSettings = ctx.settings or ScriptSettings()
    if settings.base_url and not ctx.spec.script:
        # A coroutine: the stage runner awaits it in the event loop, where the request can be cancelled.
        return _run_with_model(ctx, settings)
    spec = ctx.spec
    if spec.script:
        ctx.report(0.2, "Validating the supplied script")
        scenes = validate_user_script(spec)
        notes: list[str] = []
    else:
        ctx.report(0.1, "Generating script")
        written = write_script(spec)
        scenes = [ScriptScene(**asdict(scene)) for scene in written.scenes]
        notes = written.notes
        for note in notes:
            ctx.log.info("script note: %s", note)
    ctx.raise_if_cancelled()
    return _publish(ctx, scenes, notes)


async def _run_with_model(ctx: StageContext, settings: ScriptSettings) -> dict[str, Any]:
    ctx.log.info("script from the language model %r at %s", settings.model, settings.base_url)
    written = await write_scenes(ctx, settings)
    # The model's scenes passed validate_scenes; the user-script path fills their defaults the same way.
    checked = job_pb2.JobSpec()
    checked.CopyFrom(ctx.spec)
    checked.script.extend(written)
    return _publish(ctx, validate_user_script(checked), [])


def _publish(ctx: StageContext, scenes: list[ScriptScene], notes: list[str]) -> dict[str, Any]:
    """Writes the script artifact."""
    spec = ctx.spec
    report: Callable[[float, str], None] = ctx.report
    summary = f"{len(scenes)} scenes, {sum(count_words(s.narration) for s in scenes)} words"
    report(0.9, " ".join([summary + ("." if notes else ""), *notes]))
    document: ScriptArtifact = {
        "language": spec.brief.language or "en",
        "scenes": [ScriptSceneArtifact(**asdict(scene)) for scene in scenes],  # type: ignore[typeddict-item]
    }
    if notes:
        document["notes"] = notes
    ctx.path(SCRIPT_FILE).write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    # The last word of the step: a recorder coalescing a burst of reports keeps only this one.
    report(1.0, " ".join(["Script written" + ("." if notes else ""), *notes]))
    return {"script": SCRIPT_FILE}


@hookimpl
def register_stages(register: Callable[[Stage], None]) -> None:
    register(
        Stage(
            name="script",
            title="Script",
            weight=20,
            order=100,
            run=run,
            settings=ScriptSettings,
            description="Writes the narration, captions and visual hints of each scene from the brief.",
        )
    )
