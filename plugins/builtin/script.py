"""The built-in script stage: an offline, deterministic writer that turns a brief into scenes.

The writer needs no model and no network. It assembles each scene from sentence templates chosen by the
scene's role (opening, background, key points, example, takeaway), filled in from the brief's topic,
audience, goal and tone, and picked by a random generator seeded from the brief, so the same brief always
gives the same script. It counts words against the narration budget: target duration times the voice's
speaking rate. A user-supplied script skips the writer and is validated instead.

Artifact: ``script`` -> ``script.json`` (``{"language", "scenes": [{title, narration, caption,
visual_hint}]}``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import PACING_RATE_FACTOR
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.artifacts import ScriptArtifact, ScriptSceneArtifact, read_script

SCRIPT_FILE = "script.json"
SUPPORTED_LANGUAGES = ("en",)
SECONDS_PER_SCENE = 6.0
MAX_NARRATION_CHARS = 2000
MAX_SCENES = 200
# Words per nominal word-per-minute. espeak's real pace on this writer's prose was measured within 5 % of
# its nominal rate from 120 to 300 wpm (tests/test_builtin_script.py checks it with real speech).
ESPEAK_RATE_FACTOR = 1.0
_WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class ScriptScene:
    title: str
    narration: str
    caption: str
    visual_hint: str


def speaking_rate(spec: job_pb2.JobSpec) -> int:
    """The words per minute the voice speaks at: the voice's rate adjusted by the plan's pacing."""
    base = spec.voice.rate or 160
    return max(80, min(450, round(base * PACING_RATE_FACTOR.get(spec.plan.pacing, 1.0))))


def word_budget(spec: job_pb2.JobSpec) -> int:
    duration = spec.plan.target_duration_seconds or 30.0
    return max(3, round(duration * speaking_rate(spec) / 60.0 * ESPEAK_RATE_FACTOR))


def count_words(text: str) -> int:
    return len(text.split())


# -- the English writer ------------------------------------------------------------------------------

_OPENINGS = (
    "Let's talk about {topic}.",
    "Today we look at {topic}.",
    "Here is a short guide to {topic}.",
    "Welcome to a quick tour of {topic}.",
)
_AUDIENCE = (
    "This is made for {audience}.",
    "If you are one of the {audience}, this is for you.",
    "We keep it simple for {audience}.",
)
_GOAL = (
    "By the end, you will {goal}.",
    "The aim is simple: {goal}.",
    "Our goal today is to help you {goal}.",
)
_BODY = {
    "background": (
        "First, some background on why it matters.",
        "It touches more of daily life than most people expect.",
        "Many people have heard of it, but few know how it really works.",
        "The idea is older than it looks, and it keeps changing.",
        "It starts with a handful of simple ideas.",
        "Once you see the basic pattern, the rest falls into place.",
    ),
    "point": (
        "The first thing to know is how the parts fit together.",
        "Each part has one clear job, and they work as a team.",
        "Small details make a big difference here.",
        "A good rule of thumb is to start small and build up.",
        "Timing matters just as much as the method.",
        "Practice turns the basics into habits.",
        "Look for the pattern, and the details become easy to remember.",
        "It helps to compare it with something you already know.",
        "Mistakes are normal, and each one teaches something.",
        "Most experts agree that consistency beats intensity.",
    ),
    "example": (
        "Take a simple example from everyday life.",
        "Picture a typical morning and where it shows up.",
        "Imagine trying it for one week and noting what changes.",
        "A real case shows the idea better than any definition.",
        "Think of a friend who tried it for the first time.",
    ),
    "takeaway": (
        "So, what should you remember?",
        "Keep the main idea in mind and the rest follows.",
        "Start with one small step today.",
        "Come back to the basics whenever you feel lost.",
        "Share what you learned with someone else.",
    ),
}
_FILLERS = (
    "That is worth remembering.",
    "It is easier than it sounds.",
    "Keep that in mind.",
    "This is the key.",
    "Simple, but powerful.",
    "Let's keep going.",
    "Think about it.",
    "Here is why.",
    "Really.",
)
_TONE_CLOSERS = {
    "playful": "And yes, it can be fun too.",
    "serious": "It deserves careful attention.",
    "inspiring": "You can do more than you think.",
    "informative": "Those are the facts that matter.",
}
_TITLES = {
    "opening": "{topic}",
    "background": "Why it matters",
    "point": "Key idea {number}",
    "example": "An example",
    "takeaway": "The takeaway",
}
_HINTS = {
    "opening": "title",
    "background": "diagram",
    "point": "list",
    "example": "example",
    "takeaway": "summary",
}


def _clean(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".!?")


def _short(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut + "…"


def _roles(scene_count: int) -> list[str]:
    if scene_count == 1:
        return ["opening"]
    middle: list[str] = []
    for index in range(scene_count - 2):
        if index == 0:
            middle.append("background")
        elif index % 3 == 2:
            middle.append("example")
        else:
            middle.append("point")
    return ["opening", *middle, "takeaway"]


def _fill(sentences: list[str], pool: Sequence[str], budget: int, rng: random.Random, used: set[str]) -> None:
    """Adds unused sentences from ``pool`` (then short fillers) while they fit the budget."""
    available = [sentence for sentence in pool if sentence not in used]
    rng.shuffle(available)
    while True:
        left = budget - sum(count_words(sentence) for sentence in sentences)
        fitting = [sentence for sentence in available if count_words(sentence) <= left]
        if not fitting:
            fillers = [f for f in _FILLERS if count_words(f) <= left and f not in sentences]
            if not fillers:
                return
            fitting = fillers
        choice = fitting[0]
        sentences.append(choice)
        used.add(choice)
        if choice in available:
            available.remove(choice)


def write_script(brief: job_pb2.Brief, words: int, seconds: float) -> list[ScriptScene]:
    """Writes a script of about ``words`` words spread over scenes of about six seconds each."""
    topic = _clean(brief.topic)
    if not _WORD.search(topic):
        raise ReelcastError(errors.BRIEF_INVALID, "The topic has no letters or digits to write about.")
    language = (brief.language or "en").lower().split("-", 1)[0]
    if language not in SUPPORTED_LANGUAGES:
        raise ReelcastError(
            errors.LANGUAGE_UNSUPPORTED,
            f"The script writer has no template for language {brief.language!r}; supported: "
            f"{', '.join(SUPPORTED_LANGUAGES)}. Supply your own script to use another language.",
        )
    seed = hashlib.sha256(
        "\x1f".join([topic, brief.audience, brief.goal, brief.tone, language, str(words)]).encode()
    ).digest()
    rng = random.Random(seed)
    scene_count = max(1, min(MAX_SCENES, round(seconds / SECONDS_PER_SCENE)))
    scene_count = min(scene_count, max(1, words // 6))
    roles = _roles(scene_count)
    audience = _clean(brief.audience)
    goal = _clean(brief.goal)
    goal = goal[0].lower() + goal[1:] if goal else ""
    tone = _clean(brief.tone).lower()
    scenes: list[ScriptScene] = []
    point_number = 0
    written = 0
    used: set[str] = set()
    for index, role in enumerate(roles):
        # Each scene gets an even share of what is left, so one scene's surplus is absorbed by the rest.
        budget = round((words - written) / (scene_count - index))
        sentences: list[str] = []
        if role == "opening":
            sentences.append(rng.choice(_OPENINGS).format(topic=topic))
            for template, value in ((_AUDIENCE, audience), (_GOAL, goal)):
                extra = rng.choice(template).format(audience=value, goal=value) if value else ""
                if extra and count_words(" ".join([*sentences, extra])) <= budget:
                    sentences.append(extra)
            pool: Sequence[str] = _BODY["background"]
        else:
            pool = _BODY[role]
        # The takeaway always ends on the goal and the tone's closing line; the rest of its budget is body.
        closing: list[str] = []
        if role == "takeaway" or scene_count == 1:
            if goal and not any(goal in sentence for sentence in sentences):
                closing.append(f"Now you can {goal}.")
            if tone in _TONE_CLOSERS:
                closing.append(_TONE_CLOSERS[tone])
        _fill(sentences, pool, budget - count_words(" ".join(closing)), rng, used)
        sentences.extend(closing)
        if role == "point":
            point_number += 1
        narration = " ".join(sentences) or f"{topic}."
        title = _TITLES[role].format(topic=_short(topic, 60), number=point_number)
        caption = _short(sentences[0] if sentences else topic, 90)
        scenes.append(ScriptScene(title, narration, caption, _HINTS[role]))
        written += count_words(narration)
    return scenes


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


def run(ctx: StageContext) -> dict[str, Any]:
    spec = ctx.spec
    if spec.script:
        ctx.report(0.2, "Validating the supplied script")
        scenes = validate_user_script(spec)
    else:
        ctx.report(0.1, "Generating script")
        scenes = write_script(spec.brief, word_budget(spec), spec.plan.target_duration_seconds or 30.0)
    ctx.raise_if_cancelled()
    report: Callable[[float, str], None] = ctx.report
    report(0.8, f"{len(scenes)} scenes, {sum(count_words(s.narration) for s in scenes)} words")
    document: ScriptArtifact = {
        "language": spec.brief.language or "en",
        "scenes": [ScriptSceneArtifact(**asdict(scene)) for scene in scenes],  # type: ignore[typeddict-item]
    }
    ctx.path(SCRIPT_FILE).write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    report(1.0, "Script written")
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
            description="Writes the narration, captions and visual hints of each scene from the brief.",
        )
    )
