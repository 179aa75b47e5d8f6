"""The REST representations: protobuf messages of ``JobService`` as the camelCase JSON of docs/api.md
(the request bodies are in bridge/bodies.py), and the words both use.

Every shape is a msgspec ``Struct``, declared once: the bridge decodes bodies and encodes answers with them,
and ``bridge/openapi.py`` publishes their JSON Schema (``msgspec.json.schema_components``), so the document
cannot drift from what the server sends. A response field without a default is always present.

Statuses use the seed's words everywhere, so a job read over REST and the same job seen over SSE agree:
a cancelled job is ``Failed`` with an ``E311-CANCELLED`` error (the seed's rule), not a separate word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from google.protobuf import timestamp_pb2

from reelcast.jobs.priorities import priority_word
from reelcast.jobs.tracing import trace_id_of
from reelcast.jobs.v1 import job_pb2

JOB_STATUS_WORDS = {
    job_pb2.JOB_STATUS_UNSPECIFIED: "Queued",
    job_pb2.JOB_STATUS_QUEUED: "Queued",
    job_pb2.JOB_STATUS_RUNNING: "Running",
    job_pb2.JOB_STATUS_SUCCEEDED: "Succeeded",
    job_pb2.JOB_STATUS_FAILED: "Failed",
    job_pb2.JOB_STATUS_CANCELLED: "Failed",
    job_pb2.JOB_STATUS_AWAITING_REVIEW: "AwaitingReview",
}
# A filter word selects these statuses (Failed covers cancelled jobs, as it does on the wire).
JOB_STATUS_FILTERS = {
    "Queued": [job_pb2.JOB_STATUS_QUEUED],
    "Running": [job_pb2.JOB_STATUS_RUNNING],
    "Succeeded": [job_pb2.JOB_STATUS_SUCCEEDED],
    "Failed": [job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED],
    "AwaitingReview": [job_pb2.JOB_STATUS_AWAITING_REVIEW],
}
STEP_STATUS_WORDS = {
    job_pb2.STEP_STATUS_UNSPECIFIED: "Pending",
    job_pb2.STEP_STATUS_PENDING: "Pending",
    job_pb2.STEP_STATUS_RUNNING: "Running",
    job_pb2.STEP_STATUS_SUCCEEDED: "Succeeded",
    job_pb2.STEP_STATUS_FAILED: "Failed",
    job_pb2.STEP_STATUS_SKIPPED: "Skipped",
    job_pb2.STEP_STATUS_CANCELLED: "Cancelled",
}
ASPECTS = {
    "16:9": job_pb2.ASPECT_WIDESCREEN_16_9,
    "9:16": job_pb2.ASPECT_VERTICAL_9_16,
    "1:1": job_pb2.ASPECT_SQUARE_1_1,
}
PACINGS = {
    "Chill": job_pb2.PACING_CHILL,
    "Conversational": job_pb2.PACING_CONVERSATIONAL,
    "Fast": job_pb2.PACING_FAST,
}
CAPTION_MODES = {"burned": job_pb2.CAPTION_MODE_BURNED, "soft": job_pb2.CAPTION_MODE_SOFT}
CAPTION_STYLES = {"words": job_pb2.CAPTION_STYLE_WORDS, "sentences": job_pb2.CAPTION_STYLE_SENTENCES}

# -- the POST /api/jobs body -------------------------------------------------------------------------------
# Types and shape are checked here; ranges and lengths are JobService's (one validation, reported with the
# same field names). Integers are bounded to int32 so that an absurd number is a 400, not an overflow. The
# defaults are the server's own (validation.with_defaults); a 0 that the server resolves is described.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
AspectWord = Literal["16:9", "9:16", "1:1"]
PacingWord = Literal["Chill", "Conversational", "Fast"]
CaptionModeWord = Literal["burned", "soft"]
CaptionStyleWord = Literal["words", "sentences"]
JobWord = Literal["Queued", "Running", "Succeeded", "Failed", "AwaitingReview"]
StepWord = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]


class _Answer(msgspec.Struct, rename="camel"):
    pass


Number = Annotated[float, msgspec.Meta(description="An integer when whole (the seed writes 50, not 50.0).")]
Time = Annotated[str | None, msgspec.Meta(description="RFC 3339; null until it happened.")]


class JobError(_Answer):
    code: Annotated[str, msgspec.Meta(description="Catalogue code, see docs/errors.md")]
    message: str
    remediation: str


class Output(_Answer, kw_only=True):
    """The fields a job's files do not have are left out."""

    video_path: str
    size_bytes: int
    duration_seconds: Number | msgspec.UnsetType = msgspec.UNSET
    thumbnail_path: str | msgspec.UnsetType = msgspec.UNSET
    subtitle_path: str | msgspec.UnsetType = msgspec.UNSET
    webvtt_path: str | msgspec.UnsetType = msgspec.UNSET
    video_url: Annotated[str, msgspec.Meta(description="GET /api/jobs/{jobId}/output")]
    thumbnail_url: str | msgspec.UnsetType = msgspec.UNSET
    webvtt_url: Annotated[
        str | msgspec.UnsetType, msgspec.Meta(description="GET /api/jobs/{jobId}/webvtt, for a <track>")
    ] = msgspec.UNSET


class Preview(_Answer):
    """The part of the video already rendered, while the rest renders (docs/api.md#previews)."""

    video_url: Annotated[
        str, msgspec.Meta(description="GET /api/jobs/{jobId}/preview?revision=N: a playable MP4")
    ]
    duration_seconds: Annotated[
        Number, msgspec.Meta(description="Seconds of video it holds, from the start.")
    ]
    total_seconds: Annotated[Number, msgspec.Meta(description="The whole video's expected seconds.")]
    revision: Annotated[int, msgspec.Meta(description="1, then one more for each longer preview.")]


class Step(_Answer):
    name: str
    step: Annotated[str, msgspec.Meta(description="Display title, as in SSE events.")]
    status: StepWord
    progress_pct: Number
    message: str
    start_time: Time
    end_time: Time
    duration_seconds: Number | None
    errors: list[JobError]


class Brief(_Answer):
    topic: str
    audience: str
    goal: str
    tone: str
    language: str
    aspect: AspectWord
    key_points: list[str]


class Plan(_Answer):
    target_duration_seconds: Number
    pacing: PacingWord
    style: str


class Voice(_Answer):
    voice_name: str
    rate: int
    pitch: int


class Render(_Answer):
    width: int
    height: int
    fps: int
    video_bitrate_k: int
    audio_bitrate_k: int
    captions: bool
    caption_mode: CaptionModeWord
    caption_style: CaptionStyleWord
    variable_frame_rate: bool


class Music(_Answer):
    mood: str
    media_id: str


class Scene(_Answer):
    title: str
    narration: str
    caption: str
    visual_hint: str


class JobSpec(_Answer):
    """A job's spec as the server runs it: the body with every default filled in."""

    brief: Brief
    plan: Plan
    voice: Voice
    render: Render
    script: list[Scene]
    review_script: bool
    music: Music
    labels: Annotated[dict[str, str], msgspec.Meta(description="The job's labels; empty: none.")]
    priority: Annotated[str, msgspec.Meta(description="high, normal or low, among the owner's jobs.")]


class ScriptReview(_Answer):
    """The script of a job that asked for review: edit it while the job is AwaitingReview, then approve."""

    scenes: list[Scene]
    revision: Annotated[int, msgspec.Meta(description="1 as written; one more per edit.")]
    expire_time: Annotated[Time, msgspec.Meta(description="The job fails with E703 unless approved by then.")]
    approved: bool


class Job(_Answer):
    job_id: str
    status: Annotated[JobWord, msgspec.Meta(description="A cancelled job is Failed (E311-CANCELLED).")]
    cancelled: bool
    stage: Annotated[str, msgspec.Meta(description="Title of the current or last step.")]
    stage_name: str
    job_progress_pct: Number
    steps: list[Step]
    spec: JobSpec
    output: Output | None
    errors: list[JobError]
    correlation_id: str
    trace_id: Annotated[
        str,
        msgspec.Meta(description="The job's OpenTelemetry trace id (32 hex digits); empty outside a trace."),
    ]
    create_time: Time
    start_time: Time
    finish_time: Time
    last_event_id: Annotated[str, msgspec.Meta(description="Id of the job's latest event.")]
    attempt: int
    events_url: str
    review: Annotated[
        ScriptReview | None, msgspec.Meta(description="Set once a job with reviewScript wrote its script.")
    ]
    queue_position: Annotated[
        int | msgspec.UnsetType,
        msgspec.Meta(description="While Queued and waiting: how many jobs start before it (0: next)."),
    ] = msgspec.UNSET
    estimated_start_seconds: Annotated[
        Number | msgspec.UnsetType,
        msgspec.Meta(description="With queuePosition, when known: the estimated wait until it starts."),
    ] = msgspec.UNSET
    preview: Annotated[
        Preview | msgspec.UnsetType,
        msgspec.Meta(description="While the render publishes one and the job has not completed."),
    ] = msgspec.UNSET


class JobList(_Answer):
    jobs: list[Job]
    next_page_token: Annotated[str, msgspec.Meta(description="Empty on the last page.")]


class Stage(_Answer):
    name: str
    title: str
    weight: Number
    order: int
    plugin: str
    plugin_version: str
    description: str


class StageList(_Answer):
    stages: Annotated[list[Stage], msgspec.Meta(description="In pipeline order.")]


class Theme(_Answer):
    name: Annotated[str, msgspec.Meta(description="What plan.style takes.")]
    title: str
    description: str
    preview_url: Annotated[str, msgspec.Meta(description="A PNG of a sample scene in the theme, 320x180.")]


class ThemeList(_Answer):
    themes: Annotated[list[Theme], msgspec.Meta(description="The default first.")]


class FailureDetails(_Answer):
    job_id: str
    status: Literal["Failed"]
    stage: str
    message: str
    error_code: str
    stderr_snippet: str
    log_path: str
    suggested_actions: list[str]
    failed_at: Time
    errors: list[JobError]
    correlation_id: str
    trace_id: Annotated[
        str, msgspec.Meta(description="The job's OpenTelemetry trace id; empty outside a trace.")
    ]


class Health(_Answer):
    status: Literal["ok"]
    grpc_target: str
    upstreams_open: Annotated[
        int, msgspec.Meta(description="WatchJob streams open now (one per watched job).")
    ]
    upstreams_opened: Annotated[int, msgspec.Meta(description="WatchJob streams opened since start.")]
    subscribers: Annotated[int, msgspec.Meta(description="SSE subscribers following a live upstream now.")]


# Every answer Struct the document publishes (bridge/openapi.py, beside bridge/bodies.py's BODY_TYPES).
ANSWER_TYPES: tuple[type[msgspec.Struct], ...] = (
    Job,
    JobList,
    Stage,
    StageList,
    FailureDetails,
    Health,
    ThemeList,
)

# -- protobuf → JSON -----------------------------------------------------------------------------------------


def number(value: float) -> int | float:
    """A percent or size as JSON: an integer when whole (the seed writes ``"progressPct":50``)."""
    rounded = round(value, 2)
    return int(rounded) if rounded.is_integer() else rounded


def timestamp(message: Any, name: str) -> str | None:
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToJsonString()


def job_errors(errors: Any) -> list[JobError]:
    return [JobError(e.code, e.message, e.remediation) for e in errors]


def output_resource(job_id: str, output: job_pb2.JobOutput) -> Output:
    """The seed's ``output`` (``videoPath``, ``sizeBytes``) plus the URLs a browser can fetch it from."""
    return Output(
        video_path=output.video_path,
        size_bytes=output.size_bytes,
        video_url=f"/api/jobs/{job_id}/output",
        duration_seconds=number(output.duration_seconds) if output.duration_seconds else msgspec.UNSET,
        thumbnail_path=output.thumbnail_path or msgspec.UNSET,
        subtitle_path=output.subtitle_path or msgspec.UNSET,
        thumbnail_url=f"/api/jobs/{job_id}/thumbnail" if output.thumbnail_path else msgspec.UNSET,
        webvtt_path=output.webvtt_path or msgspec.UNSET,
        webvtt_url=f"/api/jobs/{job_id}/webvtt" if output.webvtt_path else msgspec.UNSET,
    )


def preview_resource(job_id: str, preview: job_pb2.Preview) -> Preview:
    # The revision in the URL makes each preview its own resource: a player (and any cache) fetches the
    # longer file instead of mixing ranges of two.
    return Preview(
        video_url=f"/api/jobs/{job_id}/preview?revision={preview.revision}",
        duration_seconds=number(preview.duration_seconds),
        total_seconds=number(preview.total_seconds),
        revision=preview.revision,
    )


def failure_resource(job: job_pb2.Job) -> FailureDetails:
    failure = job.failure
    return FailureDetails(
        job_id=job.id,
        status="Failed",
        stage=failure.stage,
        message=failure.message,
        error_code=failure.error_code or (job.errors[0].code if job.errors else ""),
        stderr_snippet=failure.stderr_snippet,
        log_path=failure.log_path,
        suggested_actions=list(failure.suggested_actions),
        failed_at=timestamp(failure, "failed_at") or timestamp(job, "finish_time"),
        errors=job_errors(job.errors),
        correlation_id=job.correlation_id,
        trace_id=trace_id_of(job.traceparent),
    )


def _word(words: Mapping[str, int], value: int, default: str) -> Any:
    return next((word for word, enum in words.items() if enum == value), default)


def spec_resource(spec: job_pb2.JobSpec) -> JobSpec:
    """The spec with defaults filled in, as the docs promise: an unset caption mode is the default one."""
    brief, plan, voice, render = spec.brief, spec.plan, spec.voice, spec.render
    return JobSpec(
        brief=Brief(
            brief.topic,
            brief.audience,
            brief.goal,
            brief.tone,
            brief.language,
            _word(ASPECTS, brief.aspect, "16:9"),
            list(brief.key_points),
        ),
        plan=Plan(
            number(plan.target_duration_seconds), _word(PACINGS, plan.pacing, "Conversational"), plan.style
        ),
        voice=Voice(voice.name, voice.rate, voice.pitch),
        render=Render(
            width=render.width,
            height=render.height,
            fps=render.fps,
            video_bitrate_k=render.video_bitrate_kbps,
            audio_bitrate_k=render.audio_bitrate_kbps,
            captions=render.captions,
            caption_mode=_word(CAPTION_MODES, render.caption_mode, "burned"),
            caption_style=_word(CAPTION_STYLES, render.caption_style, "words"),
            variable_frame_rate=render.variable_frame_rate,
        ),
        script=scenes_resource(spec.script),
        review_script=spec.review_script,
        music=Music(spec.music.mood, spec.music.media_id),
        labels=dict(spec.labels),
        priority=priority_word(spec.priority),
    )


def scenes_resource(scenes: Any) -> list[Scene]:
    return [Scene(s.title, s.narration, s.caption, s.visual_hint) for s in scenes]


def review_resource(job: job_pb2.Job) -> ScriptReview | None:
    if not job.HasField("review"):
        return None
    review = job.review
    return ScriptReview(
        scenes=scenes_resource(review.scenes),
        revision=review.revision,
        expire_time=timestamp(review, "expire_time"),
        approved=review.approved,
    )


def step_resource(step: job_pb2.Step) -> Step:
    return Step(
        name=step.name,
        step=step.title,
        status=STEP_STATUS_WORDS[step.status],  # type: ignore[arg-type]
        progress_pct=number(step.percent),
        message=step.message,
        start_time=timestamp(step, "start_time"),
        end_time=timestamp(step, "end_time"),
        duration_seconds=number(step.duration.ToNanoseconds() / 1e9) if step.HasField("duration") else None,
        errors=job_errors(step.errors),
    )


def job_resource(job: job_pb2.Job) -> Job:
    """A job as REST returns it and as the SSE ``resync`` event carries it."""
    current = next((s for s in job.steps if s.name == job.stage), None)
    return Job(
        job_id=job.id,
        status=JOB_STATUS_WORDS[job.status],  # type: ignore[arg-type]
        cancelled=job.status == job_pb2.JOB_STATUS_CANCELLED,
        stage=current.title if current is not None else "",
        stage_name=job.stage,
        job_progress_pct=number(job.percent),
        steps=[step_resource(s) for s in job.steps],
        spec=spec_resource(job.spec),
        output=output_resource(job.id, job.output) if job.HasField("output") else None,
        errors=job_errors(job.errors),
        correlation_id=job.correlation_id,
        trace_id=trace_id_of(job.traceparent),
        create_time=timestamp(job, "create_time"),
        start_time=timestamp(job, "start_time"),
        finish_time=timestamp(job, "finish_time"),
        last_event_id=str(job.last_sequence),
        attempt=job.attempt,
        events_url=f"/api/jobs/{job.id}/events",
        review=review_resource(job),
        queue_position=job.queue_position if job.HasField("queue_position") else msgspec.UNSET,
        estimated_start_seconds=(
            number(job.estimated_start.ToNanoseconds() / 1e9)
            if job.HasField("queue_position") and job.HasField("estimated_start")
            else msgspec.UNSET
        ),
        preview=preview_resource(job.id, job.preview) if job.HasField("preview") else msgspec.UNSET,
    )


def stage_resource(stage: job_pb2.Stage) -> Stage:
    return Stage(
        name=stage.name,
        title=stage.title,
        weight=number(stage.weight),
        order=stage.order,
        plugin=stage.plugin,
        plugin_version=stage.plugin_version,
        description=stage.description,
    )


# The JSON builtins of the same Structs, for the SSE events (bridge/sse.py) that embed them.


def errors_json(errors: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = msgspec.to_builtins(job_errors(errors))
    return result


def output_json(job_id: str, output: job_pb2.JobOutput) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(output_resource(job_id, output))
    return result


def preview_json(job_id: str, preview: job_pb2.Preview) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(preview_resource(job_id, preview))
    return result


def job_json(job: job_pb2.Job) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(job_resource(job))
    return result
