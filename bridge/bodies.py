"""The REST request bodies (``POST /api/jobs``, ``PUT /api/jobs/{jobId}/script``, ``POST .../approve``) as
msgspec Structs, and what they become: a ``JobSpec`` or a list of ``Scene``. They forbid unknown fields, so
a typo is a 400 naming it; their defaults are the server's own (``validation.with_defaults``).
``bridge/openapi.py`` publishes their JSON Schema beside the answers' (reelcast/jobs/resources.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from reelcast.bridge.problems import ApiError
from reelcast.jobs import errors, validation
from reelcast.jobs.priorities import PRIORITIES
from reelcast.jobs.resources import (
    ASPECTS,
    CAPTION_MODES,
    CAPTION_STYLES,
    PACINGS,
    AspectWord,
    CaptionModeWord,
    CaptionStyleWord,
    Int32,
    PacingWord,
    Text,
)
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.violations import FieldViolation


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class BriefBody(_Body):
    topic: Annotated[Text, msgspec.Meta(description="Required, 1 to 500 characters.")]
    audience: Text = ""
    goal: Text = ""
    tone: Text = ""
    language: Text = "en"
    aspect: AspectWord = "16:9"
    key_points: Annotated[
        list[Text],
        msgspec.Meta(
            description="The facts or beats to say, in order: at most 20, 1 to 300 characters each."
        ),
    ] = []


MotionWord = Literal["None", "KenBurns"]
TransitionWord = Literal["None", "Crossfade", "Slide", "Wipe", "FadeBlack"]
MOTIONS = {"None": job_pb2.MOTION_NONE, "KenBurns": job_pb2.MOTION_KEN_BURNS}
TRANSITIONS = {
    "None": job_pb2.TRANSITION_NONE,
    "Crossfade": job_pb2.TRANSITION_CROSSFADE,
    "Slide": job_pb2.TRANSITION_SLIDE,
    "Wipe": job_pb2.TRANSITION_WIPE,
    "FadeBlack": job_pb2.TRANSITION_FADE_BLACK,
}


class PlanBody(_Body):
    target_duration_seconds: Annotated[float, msgspec.Meta(description="3 to 600")] = (
        validation.DEFAULT_DURATION_SECONDS
    )
    pacing: PacingWord = "Conversational"
    style: Text = ""
    # Left out: KenBurns and Crossfade, or None and None with variableFrameRate (the server's defaults).
    motion: Annotated[
        MotionWord | None, msgspec.Meta(description="Default KenBurns (None with variableFrameRate).")
    ] = None
    transition: Annotated[
        TransitionWord | None, msgspec.Meta(description="Default Crossfade (None with variableFrameRate).")
    ] = None


class VoiceBody(_Body):
    voice_name: Annotated[Text, msgspec.Meta(description="Empty: the language's default voice.")] = ""
    rate: Annotated[Int32, msgspec.Meta(description="Words per minute, 80 to 450.")] = (
        validation.DEFAULT_RATE_WPM
    )
    pitch: Annotated[Int32, msgspec.Meta(description="0 to 100.")] = validation.DEFAULT_PITCH


class RenderBody(_Body):
    width: Annotated[
        Int32, msgspec.Meta(description="Even, 160 to 3840; 0: from the aspect (1280 for 16:9).")
    ] = 0
    height: Annotated[
        Int32, msgspec.Meta(description="Even, 160 to 3840; 0: from the aspect (720 for 16:9).")
    ] = 0
    fps: Annotated[Int32, msgspec.Meta(description="1 to 60.")] = validation.DEFAULT_FPS
    video_bitrate_k: Annotated[Int32, msgspec.Meta(description="kbit/s; 0 lets the encoder choose.")] = 0
    audio_bitrate_k: Int32 = validation.DEFAULT_AUDIO_BITRATE_KBPS
    captions: bool = False
    caption_mode: CaptionModeWord = "burned"
    caption_style: Annotated[
        CaptionStyleWord, msgspec.Meta(description="words: 1 to 4 at a time, karaoke-highlighted.")
    ] = "words"
    variable_frame_rate: bool = False


MediaId = Annotated[
    str, msgspec.Meta(max_length=128, description="A media id of yours (POST /api/media); empty: none.")
]
PriorityWord = Literal["high", "normal", "low"]
CornerWord = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS = {
    "top-left": job_pb2.CORNER_TOP_LEFT,
    "top-right": job_pb2.CORNER_TOP_RIGHT,
    "bottom-left": job_pb2.CORNER_BOTTOM_LEFT,
    "bottom-right": job_pb2.CORNER_BOTTOM_RIGHT,
}


class SceneBody(_Body):
    narration: Text
    title: Text = ""
    caption: Text = ""
    visual_hint: Text = ""
    background_media_id: Annotated[MediaId, msgspec.Meta(description="An image or a clip of yours.")] = ""


class LogoBody(_Body):
    media_id: Annotated[MediaId, msgspec.Meta(description="An image of yours.")]
    corner: CornerWord = "top-right"


class MusicBody(_Body):
    mood: Annotated[
        Text,
        msgspec.Meta(
            description="The generated bed's mood: calm, upbeat or serious; none: no music; empty: the "
            "brief's tone chooses."
        ),
    ] = ""
    media_id: Annotated[MediaId, msgspec.Meta(description="An audio track of yours; replaces the bed.")] = ""


class CreateJobBody(_Body):
    brief: BriefBody
    plan: PlanBody | None = None
    voice: VoiceBody | None = None
    render: RenderBody | None = None
    script: list[SceneBody] | None = None
    logo: LogoBody | None = None
    music: MusicBody | None = None
    labels: Annotated[
        dict[str, str] | None,
        msgspec.Meta(
            description="Up to 16 labels to find the job by (GET /api/jobs?label=key=value): keys of 1 to 63 "
            "characters of a-z 0-9 . _ / - starting with a letter, values up to 63 printable characters "
            "without ','."
        ),
    ] = None
    review_script: Annotated[
        bool, msgspec.Meta(description="Stop after the script (AwaitingReview) until the owner approves it.")
    ] = False
    priority: Annotated[
        PriorityWord,
        msgspec.Meta(
            description="Where the job goes among your own waiting jobs: high, then normal, then low (first "
            "queued first within one). Other users' jobs are scheduled fairly, whatever it says."
        ),
    ] = "normal"
    request_id: Annotated[
        Text, msgspec.Meta(description="Idempotency key: a retry returns the first job.")
    ] = ""


class UpdateScriptBody(_Body):
    """``PUT /api/jobs/{jobId}/script``: the edited scenes and the review revision they were edited from."""

    scenes: Annotated[list[SceneBody], msgspec.Meta(description="1 to 100 scenes, checked like script.")]
    expected_revision: Annotated[Int32, msgspec.Meta(description="The job's review.revision.")]


class ApproveBody(_Body):
    """``POST /api/jobs/{jobId}/approve``: optionally the final scenes; without them the current ones."""

    scenes: list[SceneBody] | None = None


def scenes_from_body(scenes: list[SceneBody] | None) -> list[job_pb2.Scene]:
    return [
        job_pb2.Scene(
            title=s.title,
            narration=s.narration,
            caption=s.caption,
            visual_hint=s.visual_hint,
            background_media_id=s.background_media_id,
        )
        for s in scenes or ()
    ]


def job_spec_from_body(body: CreateJobBody) -> job_pb2.JobSpec:
    plan = body.plan or PlanBody()
    voice = body.voice or VoiceBody()
    render = body.render or RenderBody()
    music = body.music or MusicBody()
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic=body.brief.topic,
            audience=body.brief.audience,
            goal=body.brief.goal,
            tone=body.brief.tone,
            language=body.brief.language,
            aspect=ASPECTS[body.brief.aspect],
            key_points=body.brief.key_points,
        ),
        plan=job_pb2.Plan(
            target_duration_seconds=plan.target_duration_seconds,
            pacing=PACINGS[plan.pacing],
            style=plan.style,
            motion=MOTIONS[plan.motion] if plan.motion else job_pb2.MOTION_UNSPECIFIED,
            transition=TRANSITIONS[plan.transition] if plan.transition else job_pb2.TRANSITION_UNSPECIFIED,
        ),
        voice=job_pb2.VoiceSpec(name=voice.voice_name, rate=voice.rate, pitch=voice.pitch),
        render=job_pb2.RenderSpec(
            width=render.width,
            height=render.height,
            fps=render.fps,
            video_bitrate_kbps=render.video_bitrate_k,
            audio_bitrate_kbps=render.audio_bitrate_k,
            captions=render.captions,
            caption_mode=CAPTION_MODES[render.caption_mode],
            caption_style=CAPTION_STYLES[render.caption_style],
            variable_frame_rate=render.variable_frame_rate,
        ),
        script=scenes_from_body(body.script),
        review_script=body.review_script,
        logo=job_pb2.LogoSpec(media_id=body.logo.media_id, corner=CORNERS[body.logo.corner])
        if body.logo is not None
        else None,
        music=job_pb2.MusicSpec(mood=music.mood, media_id=music.media_id),
        labels=body.labels or {},
        priority=PRIORITIES[body.priority],
    )


# -- the answers --------------------------------------------------------------------------------------------


# Every body Struct the document publishes (bridge/openapi.py).
BODY_TYPES: tuple[type[msgspec.Struct], ...] = (CreateJobBody, UpdateScriptBody, ApproveBody)


def page_size_param(params: Mapping[str, str]) -> int:
    """A listing's ``pageSize`` query parameter, 0 to 1000 (0: the server's default; more is taken as
    1000, as gRPC does); anything but a whole number is a 400 naming the parameter."""
    text = params.get("pageSize", "0")
    if not re.fullmatch(r"\d{1,6}", text):
        raise ApiError(
            errors.INVALID_REQUEST,
            "pageSize must be a whole number from 0 to 1000.",
            [FieldViolation("pageSize", "must be a whole number from 0 to 1000")],
        )
    return min(int(text), 1000)
