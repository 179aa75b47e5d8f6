"""Checks a ``JobSpec`` and fills in its documented defaults.

Every violation names its field path (``spec.brief.topic``), so gRPC clients get ``google.rpc.BadRequest``
field violations and HTTP clients get the same list in the error body.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from reelcast.jobs.labels import validate_labels
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.violations import FieldViolation

DEFAULT_DURATION_SECONDS = 30.0
DEFAULT_RATE_WPM = 160
DEFAULT_PITCH = 50
DEFAULT_FPS = 30
DEFAULT_AUDIO_BITRATE_KBPS = 128
MAX_TOPIC_CHARS = 500
MAX_TEXT_FIELD_CHARS = 500
# A key point is one fact or beat: a sentence or two, spoken in a scene of its own.
MAX_KEY_POINTS = 20
MAX_KEY_POINT_CHARS = 300
MAX_SCENES = 100
# Security bounds (docs/security.md): a job renders at most 10 minutes, at most 4K UHD in either orientation.
MAX_DURATION_SECONDS = 600
MAX_LONG_SIDE = 3840
MAX_SHORT_SIDE = 2160
MAX_NARRATION_CHARS = 2000
MAX_CAPTION_CHARS = 500
# RFC 5646 section 4.4.1: a tag of 35 characters holds every language, extlang, script and region subtag.
MAX_LANGUAGE_TAG_CHARS = 35
# The measured narration may pass MAX_DURATION_SECONDS by this much (an estimate is only an estimate, and a
# 600 s brief's narration runs a little over); past it the voice stage stops with E203.
MAX_NARRATION_SECONDS = MAX_DURATION_SECONDS * 1.1

# How fast espeak-ng speaks each language at the default rate (160), measured on a sample sentence and
# rounded up by about 10 %, so that the estimate stays below the real time and never refuses a script that
# fits (docs/security.md). Words are whitespace-separated tokens; characters are the non-space ones. A
# script is as long as the larger of its two estimates: the characters bound catches text without spaces
# (Chinese and Japanese read one character at a time) and tokens that are one long run of letters.
WORDS_PER_MINUTE = {"de": 170, "en": 220, "es": 220, "fr": 250, "it": 205, "nl": 195, "pt": 200, "ru": 210}
DEFAULT_WORDS_PER_MINUTE = 250
CHARACTERS_PER_SECOND = {"ja": 2.2, "zh": 4.0}
DEFAULT_CHARACTERS_PER_SECOND = 20.0
# Pacing speeds the voice up or down (the built-in writer's factors, plugins/builtin/script.py).
PACING_RATE_FACTOR = {
    job_pb2.PACING_CHILL: 0.85,
    job_pb2.PACING_CONVERSATIONAL: 1.0,
    job_pb2.PACING_FAST: 1.2,
}

ASPECT_SIZES = {
    job_pb2.ASPECT_WIDESCREEN_16_9: (1280, 720),
    job_pb2.ASPECT_VERTICAL_9_16: (720, 1280),
    job_pb2.ASPECT_SQUARE_1_1: (1080, 1080),
}
# The moods of the generated music bed (``MusicSpec.mood``; "" follows the brief's tone), and the word that
# turns the music off.
MUSIC_MOODS = ("calm", "upbeat", "serious")
MUSIC_NONE = "none"
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _has_control_characters(text: str) -> bool:
    return any(ord(char) < 32 and char not in "\n\t" for char in text)


def _check_text(violations: list[FieldViolation], path: str, text: str, limit: int) -> None:
    if len(text) > limit:
        violations.append(FieldViolation(path, f"must be at most {limit} characters"))
    if _has_control_characters(text):
        violations.append(FieldViolation(path, "must not contain control characters"))


def validate_spec(spec: job_pb2.JobSpec) -> list[FieldViolation]:
    """Returns every violation of ``spec`` (empty when valid). Does not modify it."""
    violations: list[FieldViolation] = []
    brief = spec.brief
    if not brief.topic.strip():
        violations.append(FieldViolation("spec.brief.topic", "is required"))
    _check_text(violations, "spec.brief.topic", brief.topic, MAX_TOPIC_CHARS)
    for name in ("audience", "goal", "tone"):
        _check_text(violations, f"spec.brief.{name}", getattr(brief, name), MAX_TEXT_FIELD_CHARS)
    if brief.language and (
        len(brief.language) > MAX_LANGUAGE_TAG_CHARS or not _LANGUAGE.match(brief.language)
    ):
        violations.append(
            FieldViolation("spec.brief.language", "must be a BCP-47 tag such as 'en' or 'en-US'")
        )
    if len(brief.key_points) > MAX_KEY_POINTS:
        violations.append(
            FieldViolation("spec.brief.key_points", f"must have at most {MAX_KEY_POINTS} points")
        )
    for index, point in enumerate(brief.key_points[:MAX_KEY_POINTS]):
        path = f"spec.brief.key_points[{index}]"
        if not point.strip():
            violations.append(FieldViolation(path, "must not be empty"))
        _check_text(violations, path, point, MAX_KEY_POINT_CHARS)
    if brief.aspect not in job_pb2.Aspect.values():
        violations.append(FieldViolation("spec.brief.aspect", "is not a known aspect"))

    duration = spec.plan.target_duration_seconds
    if (
        not math.isfinite(duration)
        or duration < 0
        or (duration and not 3 <= duration <= MAX_DURATION_SECONDS)
    ):
        violations.append(
            FieldViolation(
                "spec.plan.target_duration_seconds", f"must be between 3 and {MAX_DURATION_SECONDS}"
            )
        )
    if spec.plan.pacing not in job_pb2.Pacing.values():
        violations.append(FieldViolation("spec.plan.pacing", "is not a known pacing"))
    _check_text(violations, "spec.plan.style", spec.plan.style, 100)
    if spec.plan.motion not in job_pb2.Motion.values():
        violations.append(FieldViolation("spec.plan.motion", "is not a known motion"))
    if spec.plan.transition not in job_pb2.Transition.values():
        violations.append(FieldViolation("spec.plan.transition", "is not a known transition"))
    # Every frame of a moving picture differs: a variable frame rate is for still cards only.
    if spec.render.variable_frame_rate and spec.plan.motion == job_pb2.MOTION_KEN_BURNS:
        violations.append(
            FieldViolation("spec.plan.motion", "needs a constant frame rate (turn off variableFrameRate)")
        )
    if spec.render.variable_frame_rate and spec.plan.transition not in (
        job_pb2.TRANSITION_UNSPECIFIED,
        job_pb2.TRANSITION_NONE,
    ):
        violations.append(
            FieldViolation("spec.plan.transition", "needs a constant frame rate (turn off variableFrameRate)")
        )

    voice = spec.voice
    if len(voice.name) > 100 or (voice.name and not re.match(r"^[A-Za-z0-9._+/-]+$", voice.name)):
        violations.append(FieldViolation("spec.voice.name", "must be a voice name such as 'en-us'"))
    if voice.rate and not 80 <= voice.rate <= 450:
        violations.append(FieldViolation("spec.voice.rate", "must be between 80 and 450 words per minute"))
    if voice.pitch and not 0 <= voice.pitch <= 100:
        violations.append(FieldViolation("spec.voice.pitch", "must be between 0 and 100"))

    _check_music(violations, spec.music)

    render = spec.render
    for name in ("width", "height"):
        value = getattr(render, name)
        if value and not (160 <= value <= 3840 and value % 2 == 0):
            violations.append(
                FieldViolation(f"spec.render.{name}", "must be an even number from 160 to 3840")
            )
    if bool(render.width) != bool(render.height):
        violations.append(FieldViolation("spec.render.height", "width and height must be given together"))
    elif render.width and min(render.width, render.height) > MAX_SHORT_SIDE:
        violations.append(
            FieldViolation(
                "spec.render.height", f"the resolution must be at most {MAX_LONG_SIDE}x{MAX_SHORT_SIDE}"
            )
        )
    if render.fps and not 1 <= render.fps <= 60:
        violations.append(FieldViolation("spec.render.fps", "must be between 1 and 60"))
    if render.video_bitrate_kbps and not 100 <= render.video_bitrate_kbps <= 100_000:
        violations.append(FieldViolation("spec.render.video_bitrate_kbps", "must be between 100 and 100000"))
    if render.audio_bitrate_kbps and not 32 <= render.audio_bitrate_kbps <= 512:
        violations.append(FieldViolation("spec.render.audio_bitrate_kbps", "must be between 32 and 512"))
    if render.caption_mode not in job_pb2.CaptionMode.values():
        violations.append(FieldViolation("spec.render.caption_mode", "is not a known caption mode"))
    if render.caption_style not in job_pb2.CaptionStyle.values():
        violations.append(FieldViolation("spec.render.caption_style", "is not a known caption style"))

    if len(spec.script) > MAX_SCENES:
        violations.append(FieldViolation("spec.script", f"must have at most {MAX_SCENES} scenes"))
    for index, scene in enumerate(spec.script[:MAX_SCENES]):
        path = f"spec.script[{index}]"
        if not scene.narration.strip():
            violations.append(FieldViolation(f"{path}.narration", "is required"))
        _check_text(violations, f"{path}.narration", scene.narration, MAX_NARRATION_CHARS)
        _check_text(violations, f"{path}.title", scene.title, MAX_CAPTION_CHARS)
        _check_text(violations, f"{path}.caption", scene.caption, MAX_CAPTION_CHARS)
        _check_text(violations, f"{path}.visual_hint", scene.visual_hint, 100)
    # Only a spec valid so far has defaults to estimate with.
    if spec.script and not violations:
        estimate = estimated_narration_seconds(with_defaults(spec))
        if estimate > MAX_DURATION_SECONDS:
            violations.append(
                FieldViolation(
                    "spec.script",
                    f"would narrate for about {estimate:.0f} s; the narration must fit in "
                    f"{MAX_DURATION_SECONDS} s (shorten the scenes or raise the voice rate)",
                )
            )
    violations.extend(validate_labels(spec.labels, "spec.labels"))
    return violations


def _check_music(violations: list[FieldViolation], music: job_pb2.MusicSpec) -> None:
    mood = music.mood.lower()
    if mood and mood not in (*MUSIC_MOODS, MUSIC_NONE):
        choices = ", ".join(f"'{name}'" for name in (*MUSIC_MOODS, MUSIC_NONE))
        violations.append(FieldViolation("spec.music.mood", f"must be empty or one of {choices}"))
    elif mood == MUSIC_NONE and music.media_id:
        violations.append(FieldViolation("spec.music.mood", "must not be 'none' when a media_id is given"))


def validate_scenes(
    spec: job_pb2.JobSpec, scenes: Sequence[job_pb2.Scene], *, required: bool = True
) -> list[FieldViolation]:
    """The violations of ``scenes`` edited in a job's review: the checks of a user-supplied
    ``spec.script`` (the job's own language, voice and pacing included), reported on ``scenes[i]...``.
    Empty ``scenes`` is a violation when ``required``."""
    if not scenes:
        return [FieldViolation("scenes", "must list at least one scene")] if required else []
    edited = job_pb2.JobSpec()
    edited.CopyFrom(spec)
    del edited.script[:]
    edited.script.extend(scenes)
    return [
        FieldViolation("scenes" + violation.field.removeprefix("spec.script"), violation.description)
        for violation in validate_spec(edited)
        if violation.field.startswith("spec.script")
    ]


def estimated_narration_seconds(spec: job_pb2.JobSpec) -> float:
    """How long the spec's supplied script takes to speak, from its language's speaking speed (see
    WORDS_PER_MINUTE) scaled by the voice's rate and the pacing; 0 without a script. ``spec`` has its
    defaults filled in."""
    language = (spec.brief.language or "en").split("-", 1)[0].lower()
    rate = spec.voice.rate or DEFAULT_RATE_WPM
    speed = min(450, max(80, rate * PACING_RATE_FACTOR.get(spec.plan.pacing, 1.0))) / DEFAULT_RATE_WPM
    words_per_second = WORDS_PER_MINUTE.get(language, DEFAULT_WORDS_PER_MINUTE) / 60.0 * speed
    characters_per_second = CHARACTERS_PER_SECOND.get(language, DEFAULT_CHARACTERS_PER_SECOND) * speed
    total = 0.0
    for scene in spec.script:
        tokens = scene.narration.split()
        characters = sum(len(token) for token in tokens)
        total += max(len(tokens) / words_per_second, characters / characters_per_second)
    return total


def expected_video_seconds(spec: job_pb2.JobSpec) -> float:
    """How long the video of ``spec`` runs, as far as is known before it is made: a supplied script's
    estimated narration, else the target duration (the default when unset). What the stage-duration
    history is bucketed by and what the render-time quota counts."""
    if spec.script:
        return estimated_narration_seconds(spec)
    return spec.plan.target_duration_seconds or DEFAULT_DURATION_SECONDS


def with_defaults(spec: job_pb2.JobSpec) -> job_pb2.JobSpec:
    """A copy of a valid ``spec`` with every documented default filled in."""
    filled = job_pb2.JobSpec()
    filled.CopyFrom(spec)
    brief = filled.brief
    brief.topic = brief.topic.strip()
    brief.language = brief.language or "en"
    if brief.aspect == job_pb2.ASPECT_UNSPECIFIED:
        brief.aspect = job_pb2.ASPECT_WIDESCREEN_16_9
    plan = filled.plan
    plan.target_duration_seconds = plan.target_duration_seconds or DEFAULT_DURATION_SECONDS
    if plan.pacing == job_pb2.PACING_UNSPECIFIED:
        plan.pacing = job_pb2.PACING_CONVERSATIONAL
    # Motion and transitions by default; still cards and cuts when a variable frame rate is asked for.
    still = filled.render.variable_frame_rate
    if plan.motion == job_pb2.MOTION_UNSPECIFIED:
        plan.motion = job_pb2.MOTION_NONE if still else job_pb2.MOTION_KEN_BURNS
    if plan.transition == job_pb2.TRANSITION_UNSPECIFIED:
        plan.transition = job_pb2.TRANSITION_NONE if still else job_pb2.TRANSITION_CROSSFADE
    voice = filled.voice
    voice.rate = voice.rate or DEFAULT_RATE_WPM
    voice.pitch = voice.pitch or DEFAULT_PITCH
    render = filled.render
    if not render.width:
        render.width, render.height = ASPECT_SIZES[brief.aspect]
    render.fps = render.fps or DEFAULT_FPS
    render.audio_bitrate_kbps = render.audio_bitrate_kbps or DEFAULT_AUDIO_BITRATE_KBPS
    if render.captions and render.caption_mode == job_pb2.CAPTION_MODE_UNSPECIFIED:
        render.caption_mode = job_pb2.CAPTION_MODE_BURNED
    if render.captions and render.caption_style == job_pb2.CAPTION_STYLE_UNSPECIFIED:
        render.caption_style = job_pb2.CAPTION_STYLE_WORDS
    return filled
