"""The REST representations: protobuf messages of ``JobService`` as the camelCase JSON of docs/api.md, and
the ``POST /api/jobs`` body as a ``JobSpec``.

Statuses use the seed's words everywhere, so a job read over REST and the same job seen over SSE agree:
a cancelled job is ``Failed`` with an ``E311-CANCELLED`` error (the seed's rule), not a separate word.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from google.protobuf import timestamp_pb2

from reelcast.jobs.v1 import job_pb2

JOB_STATUS_WORDS = {
    job_pb2.JOB_STATUS_UNSPECIFIED: "Queued",
    job_pb2.JOB_STATUS_QUEUED: "Queued",
    job_pb2.JOB_STATUS_RUNNING: "Running",
    job_pb2.JOB_STATUS_SUCCEEDED: "Succeeded",
    job_pb2.JOB_STATUS_FAILED: "Failed",
    job_pb2.JOB_STATUS_CANCELLED: "Failed",
}
# A filter word selects these statuses (Failed covers cancelled jobs, as it does on the wire).
JOB_STATUS_FILTERS = {
    "Queued": [job_pb2.JOB_STATUS_QUEUED],
    "Running": [job_pb2.JOB_STATUS_RUNNING],
    "Succeeded": [job_pb2.JOB_STATUS_SUCCEEDED],
    "Failed": [job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED],
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

# -- the POST /api/jobs body -------------------------------------------------------------------------------
# Types and shape are checked here; ranges and lengths are JobService's (one validation, reported with the
# same field names). Integers are bounded to int32 so that an absurd number is a 400, not an overflow.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
Aspect = Annotated[str, msgspec.Meta(pattern=r"^(16:9|9:16|1:1)$")]
Pacing = Annotated[str, msgspec.Meta(pattern=r"^(Chill|Conversational|Fast)$")]
CaptionMode = Annotated[str, msgspec.Meta(pattern=r"^(burned|soft)$")]


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class BriefBody(_Body):
    topic: Text
    audience: Text = ""
    goal: Text = ""
    tone: Text = ""
    language: Text = ""
    aspect: Aspect = "16:9"


class PlanBody(_Body):
    target_duration_seconds: float = 0.0
    pacing: Pacing = "Conversational"
    style: Text = ""


class VoiceBody(_Body):
    voice_name: Text = ""
    rate: Int32 = 0
    pitch: Int32 = 0


class RenderBody(_Body):
    width: Int32 = 0
    height: Int32 = 0
    fps: Int32 = 0
    video_bitrate_k: Int32 = 0
    audio_bitrate_k: Int32 = 0
    captions: bool = False
    caption_mode: CaptionMode | None = None
    variable_frame_rate: bool = False


class SceneBody(_Body):
    narration: Text
    title: Text = ""
    caption: Text = ""
    visual_hint: Text = ""


class CreateJobBody(_Body):
    brief: BriefBody
    plan: PlanBody | None = None
    voice: VoiceBody | None = None
    render: RenderBody | None = None
    script: list[SceneBody] | None = None
    request_id: Text = ""


def job_spec_from_body(body: CreateJobBody) -> job_pb2.JobSpec:
    plan = body.plan or PlanBody()
    voice = body.voice or VoiceBody()
    render = body.render or RenderBody()
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic=body.brief.topic,
            audience=body.brief.audience,
            goal=body.brief.goal,
            tone=body.brief.tone,
            language=body.brief.language,
            aspect=ASPECTS[body.brief.aspect],
        ),
        plan=job_pb2.Plan(
            target_duration_seconds=plan.target_duration_seconds,
            pacing=PACINGS[plan.pacing],
            style=plan.style,
        ),
        voice=job_pb2.VoiceSpec(name=voice.voice_name, rate=voice.rate, pitch=voice.pitch),
        render=job_pb2.RenderSpec(
            width=render.width,
            height=render.height,
            fps=render.fps,
            video_bitrate_kbps=render.video_bitrate_k,
            audio_bitrate_kbps=render.audio_bitrate_k,
            captions=render.captions,
            caption_mode=CAPTION_MODES[render.caption_mode] if render.caption_mode else 0,  # type: ignore[arg-type]
            variable_frame_rate=render.variable_frame_rate,
        ),
        script=[
            job_pb2.Scene(title=s.title, narration=s.narration, caption=s.caption, visual_hint=s.visual_hint)
            for s in body.script or ()
        ],
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


def errors_json(job_errors: Any) -> list[dict[str, str]]:
    return [{"code": e.code, "message": e.message, "remediation": e.remediation} for e in job_errors]


def output_json(job_id: str, output: job_pb2.JobOutput) -> dict[str, Any]:
    """The seed's ``output`` (``videoPath``, ``sizeBytes``) plus the URLs a browser can fetch it from."""
    result: dict[str, Any] = {"videoPath": output.video_path, "sizeBytes": output.size_bytes}
    if output.duration_seconds:
        result["durationSeconds"] = number(output.duration_seconds)
    if output.thumbnail_path:
        result["thumbnailPath"] = output.thumbnail_path
    if output.subtitle_path:
        result["subtitlePath"] = output.subtitle_path
    result["videoUrl"] = f"/api/jobs/{job_id}/output"
    if output.thumbnail_path:
        result["thumbnailUrl"] = f"/api/jobs/{job_id}/thumbnail"
    return result


def failure_json(job: job_pb2.Job) -> dict[str, Any]:
    failure = job.failure
    return {
        "jobId": job.id,
        "status": JOB_STATUS_WORDS[job.status],
        "stage": failure.stage,
        "message": failure.message,
        "errorCode": failure.error_code or (job.errors[0].code if job.errors else ""),
        "stderrSnippet": failure.stderr_snippet,
        "logPath": failure.log_path,
        "suggestedActions": list(failure.suggested_actions),
        "failedAt": timestamp(failure, "failed_at") or timestamp(job, "finish_time"),
        "errors": errors_json(job.errors),
        "correlationId": job.correlation_id,
    }


def spec_json(spec: job_pb2.JobSpec) -> dict[str, Any]:
    aspect = {v: k for k, v in ASPECTS.items()}.get(spec.brief.aspect, "16:9")
    pacing = {v: k for k, v in PACINGS.items()}.get(spec.plan.pacing, "Conversational")
    mode = {v: k for k, v in CAPTION_MODES.items()}.get(spec.render.caption_mode)
    render: dict[str, Any] = {
        "width": spec.render.width,
        "height": spec.render.height,
        "fps": spec.render.fps,
        "videoBitrateK": spec.render.video_bitrate_kbps,
        "audioBitrateK": spec.render.audio_bitrate_kbps,
        "captions": spec.render.captions,
        "variableFrameRate": spec.render.variable_frame_rate,
    }
    if mode:
        render["captionMode"] = mode
    return {
        "brief": {
            "topic": spec.brief.topic,
            "audience": spec.brief.audience,
            "goal": spec.brief.goal,
            "tone": spec.brief.tone,
            "language": spec.brief.language,
            "aspect": aspect,
        },
        "plan": {
            "targetDurationSeconds": number(spec.plan.target_duration_seconds),
            "pacing": pacing,
            "style": spec.plan.style,
        },
        "voice": {"voiceName": spec.voice.name, "rate": spec.voice.rate, "pitch": spec.voice.pitch},
        "render": render,
        "script": [
            {"title": s.title, "narration": s.narration, "caption": s.caption, "visualHint": s.visual_hint}
            for s in spec.script
        ],
    }


def step_json(step: job_pb2.Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "step": step.title,
        "status": STEP_STATUS_WORDS[step.status],
        "progressPct": number(step.percent),
        "message": step.message,
        "startTime": timestamp(step, "start_time"),
        "endTime": timestamp(step, "end_time"),
        "durationSeconds": number(step.duration.ToNanoseconds() / 1e9) if step.HasField("duration") else None,
        "errors": errors_json(step.errors),
    }


def job_json(job: job_pb2.Job) -> dict[str, Any]:
    """A job as REST returns it and as the SSE ``resync`` event carries it."""
    current = next((s for s in job.steps if s.name == job.stage), None)
    return {
        "jobId": job.id,
        "status": JOB_STATUS_WORDS[job.status],
        "cancelled": job.status == job_pb2.JOB_STATUS_CANCELLED,
        "stage": current.title if current is not None else "",
        "stageName": job.stage,
        "jobProgressPct": number(job.percent),
        "steps": [step_json(s) for s in job.steps],
        "spec": spec_json(job.spec),
        "output": output_json(job.id, job.output) if job.HasField("output") else None,
        "errors": errors_json(job.errors),
        "correlationId": job.correlation_id,
        "createTime": timestamp(job, "create_time"),
        "startTime": timestamp(job, "start_time"),
        "finishTime": timestamp(job, "finish_time"),
        "lastEventId": str(job.last_sequence),
        "attempt": job.attempt,
        "eventsUrl": f"/api/jobs/{job.id}/events",
    }


def stage_json(stage: job_pb2.Stage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "title": stage.title,
        "weight": number(stage.weight),
        "order": stage.order,
        "plugin": stage.plugin,
        "pluginVersion": stage.plugin_version,
        "description": stage.description,
    }
