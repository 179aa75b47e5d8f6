"""Building a ``JobSpec`` from keywords, a mapping or a message, the three ways ``create_job`` accepts one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from google.protobuf import json_format

from reelcast.jobs.labels import format_label_selector
from reelcast.jobs.priorities import PRIORITIES, PRIORITY_WORDS
from reelcast.jobs.v1 import job_pb2, job_service_pb2


class SpecFields(TypedDict, total=False):
    """The keyword form of a spec: the brief's fields and the most used plan, voice and render settings.
    Anything else goes through a full ``JobSpec`` (or its JSON mapping)."""

    topic: str
    audience: str
    goal: str
    tone: str
    language: str
    aspect: job_pb2.Aspect.ValueType
    duration_seconds: float
    pacing: job_pb2.Pacing.ValueType
    style: str
    voice: str
    width: int
    height: int
    fps: int
    captions: bool
    review_script: bool
    labels: Mapping[str, str]
    # Among the owner's own waiting jobs: job_pb2.JOB_PRIORITY_HIGH/NORMAL/LOW, or "high"/"normal"/"low".
    priority: job_pb2.JobPriority.ValueType | str


def job_spec(**fields: Any) -> job_pb2.JobSpec:
    """A ``JobSpec`` from :class:`SpecFields` keywords; TypeError for an unknown keyword."""
    unknown = set(fields) - set(SpecFields.__annotations__)
    if unknown:
        raise TypeError(f"unknown job spec field(s): {', '.join(sorted(unknown))}")
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic=fields.get("topic", ""),
            audience=fields.get("audience", ""),
            goal=fields.get("goal", ""),
            tone=fields.get("tone", ""),
            language=fields.get("language", ""),
            aspect=fields.get("aspect", job_pb2.ASPECT_UNSPECIFIED),
        ),
        plan=job_pb2.Plan(
            target_duration_seconds=fields.get("duration_seconds", 0.0),
            pacing=fields.get("pacing", job_pb2.PACING_UNSPECIFIED),
            style=fields.get("style", ""),
        ),
        voice=job_pb2.VoiceSpec(name=fields.get("voice", "")),
        render=job_pb2.RenderSpec(
            width=fields.get("width", 0),
            height=fields.get("height", 0),
            fps=fields.get("fps", 0),
            captions=fields.get("captions", False),
        ),
        review_script=fields.get("review_script", False),
        labels=dict(fields.get("labels", {})),
        priority=_priority(fields.get("priority", job_pb2.JOB_PRIORITY_UNSPECIFIED)),
    )
    return spec


def _priority(value: job_pb2.JobPriority.ValueType | str) -> job_pb2.JobPriority.ValueType:
    if not isinstance(value, str):
        return value
    if value not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITY_WORDS)}, got {value!r}")
    return PRIORITIES[value]


def create_request(
    spec: job_pb2.JobSpec | Mapping[str, Any] | None, request_id: str, fields: Mapping[str, Any]
) -> job_service_pb2.CreateJobRequest:
    """The ``CreateJobRequest`` of ``create_job``: a spec (message, or its JSON mapping in camelCase or
    snake_case) or spec keywords, never both."""
    if spec is not None and fields:
        raise TypeError("pass either a spec or spec keywords, not both")
    if spec is None:
        message = job_spec(**fields)
    elif isinstance(spec, job_pb2.JobSpec):
        message = spec
    else:
        message = json_format.ParseDict(dict(spec), job_pb2.JobSpec())
    return job_service_pb2.CreateJobRequest(spec=message, request_id=request_id)


def status_values(statuses: Iterable[job_pb2.JobStatus.ValueType | str]) -> list[job_pb2.JobStatus.ValueType]:
    """Statuses given by value or by name ("running" or "JOB_STATUS_RUNNING")."""
    values: list[job_pb2.JobStatus.ValueType] = []
    for status in statuses:
        if isinstance(status, str):
            name = status.upper()
            name = name if name.startswith("JOB_STATUS_") else f"JOB_STATUS_{name}"
            try:
                values.append(job_pb2.JobStatus.Value(name))
            except ValueError:
                raise ValueError(f"unknown job status {status!r}") from None
        else:
            values.append(status)
    return values


def list_request(
    page_size: int,
    page_token: str,
    statuses: Iterable[job_pb2.JobStatus.ValueType | str],
    labels: Mapping[str, str] | str = "",
) -> job_service_pb2.ListJobsRequest:
    """A ``ListJobsRequest``; a status may be given by name ("running" or "JOB_STATUS_RUNNING"), and the
    labels every job must carry as a mapping or as a selector (``"team=video,env=prod"``)."""
    selector = labels if isinstance(labels, str) else format_label_selector(labels)
    return job_service_pb2.ListJobsRequest(
        page_size=page_size, page_token=page_token, statuses=status_values(statuses), label_selector=selector
    )


def watch_jobs_request(
    cursor: str,
    owner: str,
    statuses: Iterable[job_pb2.JobStatus.ValueType | str],
    labels: Mapping[str, str] | str = "",
) -> job_service_pb2.WatchJobsRequest:
    """A ``WatchJobsRequest``, its filters given as to :func:`list_request`."""
    selector = labels if isinstance(labels, str) else format_label_selector(labels)
    return job_service_pb2.WatchJobsRequest(
        cursor=cursor, owner=owner, statuses=status_values(statuses), label_selector=selector
    )


ARTIFACT_KINDS: dict[str, job_service_pb2.ArtifactKind.ValueType] = {
    "video": job_service_pb2.ARTIFACT_KIND_VIDEO,
    "thumbnail": job_service_pb2.ARTIFACT_KIND_THUMBNAIL,
    "subtitles": job_service_pb2.ARTIFACT_KIND_SUBTITLES,
    "webvtt": job_service_pb2.ARTIFACT_KIND_WEBVTT,
}


def artifact_request(
    job_id: str, kind: job_service_pb2.ArtifactKind.ValueType | str, offset: int, length: int
) -> job_service_pb2.ReadJobArtifactRequest:
    if isinstance(kind, str):
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}; one of {', '.join(ARTIFACT_KINDS)}")
        kind = ARTIFACT_KINDS[kind]
    return job_service_pb2.ReadJobArtifactRequest(job_id=job_id, kind=kind, offset=offset, length=length)


def scene_messages(scenes: Iterable[job_pb2.Scene | Mapping[str, Any]]) -> list[job_pb2.Scene]:
    """Scenes from ``Scene`` messages or their JSON mappings (``{"title", "narration", "caption",
    "visualHint"}``); a mapping with an unknown key is a ValueError."""
    messages = []
    for scene in scenes:
        if isinstance(scene, job_pb2.Scene):
            messages.append(scene)
        else:
            try:
                messages.append(json_format.ParseDict(dict(scene), job_pb2.Scene()))
            except json_format.ParseError as invalid:
                raise ValueError(f"not a scene: {invalid}") from None
    return messages
