"""``GET /api/openapi.json``: the whole HTTP surface as OpenAPI 3.1, the SSE streams included.

The REST bodies' schemas are not written here: they are generated from the msgspec Structs the bridge decodes
and encodes with (bridge/bodies.py, reelcast.jobs.resources, bridge/login.py, bridge/problems.py), so what
the document says is what the server sends. Written here are what no Struct or route introspection knows: the
paths, parameters and statuses, and the SSE event vocabulary and resume rules. The events' ``data:`` is built
by bridge/sse.py as plain dicts, so their schemas are written here too, from the same Structs' components.
Tests hold all of it to the server: every route of the app is described here and nothing else is
(tests/bridge/test_rest.py), and every real answer and event validates against this document, with no
undeclared field (tests/bridge/test_openapi_conformance.py).
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from reelcast.bridge.bodies import BODY_TYPES
from reelcast.bridge.login import LOGIN_SCHEMA_TYPES
from reelcast.bridge.media import MEDIA_ANSWER_TYPES
from reelcast.bridge.problems import Problem
from reelcast.bridge.webhooks import WEBHOOK_ANSWER_TYPES, WEBHOOK_BODY_TYPES
from reelcast.jobs.event_payloads import EVENT_NAMES
from reelcast.jobs.resources import ANSWER_TYPES, JobWord, StepWord

_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_INT = {"type": "integer"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


# The ids the bridge passes on to JobService (anything else is 404 at once); a job's own id is 32 hex digits.
_JOB_ID = {
    "name": "jobId",
    "in": "path",
    "required": True,
    "schema": {**_STRING, "pattern": r"^[A-Za-z0-9._-]{1,128}$"},
}
_CORRELATION = {
    "name": "X-Correlation-ID",
    "in": "header",
    "required": False,
    "description": "Matches ^[A-Za-z0-9._-]{1,64}$, else a new id is generated. Echoed in the response.",
    "schema": _STRING,
}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "Resume after this event id (sent by EventSource on reconnect). Wins over lastEventId.",
    "schema": _STRING,
}
_LAST_EVENT_ID_QUERY = {
    "name": "lastEventId",
    "in": "query",
    "required": False,
    "description": "Resume after this event id, for clients that cannot set headers.",
    "schema": _STRING,
}
_RANGE = {
    "name": "Range",
    "in": "header",
    "required": False,
    "description": "One byte range (bytes=first-last, bytes=first-, bytes=-suffix). A position past the last "
    "byte a file can have (2^63-2) is 416; a malformed or multi-range header is ignored (200).",
    # The shape of a range, so that schema-driven clients and fuzzers send ranges and not only noise.
    "schema": {"type": "string", "format": "byte-range", "pattern": r"^bytes=([0-9]+-[0-9]*|-[0-9]+)$"},
}

_LABEL_TERMS = (
    "`key=value` terms that must all match, repeated or comma-separated "
    "(`label=team=video&label=env=prod` or `label=team=video,env=prod`)"
)
_LABEL_FILTER = {
    "name": "label",
    "in": "query",
    "schema": {"type": "array", "items": _STRING},
    "style": "form",
    "explode": True,
    "description": _LABEL_TERMS,
}
_JOB_WORDS = list(get_args(JobWord))
_STATUS_FILTER = "^({0})(,({0}))*$".format("|".join(_JOB_WORDS))


def _struct_schemas() -> dict[str, Any]:
    """The schemas of the Structs that the bridge decodes and encodes with (reelcast/jobs/resources.py): one
    declaration for the server and the document. ``title`` is the component's name already."""
    _refs, components = msgspec.json.schema_components(
        (
            *BODY_TYPES,
            *ANSWER_TYPES,
            *MEDIA_ANSWER_TYPES,
            *LOGIN_SCHEMA_TYPES,
            *WEBHOOK_BODY_TYPES,
            *WEBHOOK_ANSWER_TYPES,
            Problem,
        ),
        ref_template="#/components/schemas/{name}",
    )
    for schema in components.values():
        schema.pop("title", None)
    return components


_SCHEMAS: dict[str, Any] = _struct_schemas()
_COMMON_EVENT = {
    "correlationId": _STRING,
    "jobProgressPct": {**_NUMBER, "description": "Overall percent, 0 to 100."},
    "stepName": _STRING,
    "message": _STRING,
    "etaSeconds": _INT,
    "time": {**_STRING, "format": "date-time"},
    "jobId": {**_STRING, "description": "Only on /api/events."},
}
_EVENT_SCHEMAS = {
    "job-status": _obj(
        {
            "status": {"enum": _JOB_WORDS},
            "retried": {"type": "boolean", "description": "True on the event of a retry (RetryJob)."},
            "attempt": {**_INT, "description": "The new attempt, on a retry's event."},
            "queuePosition": {
                **_INT,
                "description": "While the job waits for a worker: how many jobs start before it (0: next).",
            },
            "estimatedStartSeconds": {
                **_NUMBER,
                "description": "With queuePosition, when it can be estimated: the wait until it starts.",
            },
            **_COMMON_EVENT,
        },
        ["status", "correlationId"],
    ),
    "step-status": _obj(
        {"step": _STRING, "status": {"enum": list(get_args(StepWord))}, **_COMMON_EVENT},
        ["step", "status", "correlationId"],
    ),
    "step-progress": _obj(
        {
            "step": _STRING,
            "progressPct": {**_NUMBER, "description": "The step's own 0-100."},
            "preview": {
                **_ref("Preview"),
                "description": "On the event that publishes a longer preview of the video (docs/api.md).",
            },
            **_COMMON_EVENT,
        },
        ["step", "progressPct", "correlationId"],
    ),
    "job-completed": _obj(
        {"status": {"enum": ["Succeeded"]}, "output": _ref("Output"), **_COMMON_EVENT},
        ["status", "output", "correlationId"],
    ),
    "job-failed": _obj(
        {
            "status": {"enum": ["Failed"]},
            "errors": {"type": "array", "items": _ref("JobError")},
            "deleted": {"type": "boolean", "description": "True when the job was deleted (DeleteJob)."},
            **_COMMON_EVENT,
        },
        ["status", "errors", "correlationId"],
    ),
    "resync": _obj(
        {"status": {"enum": _JOB_WORDS}, "job": _ref("Job"), **_COMMON_EVENT},
        ["status", "job", "correlationId"],
    ),
}
assert set(_EVENT_SCHEMAS) == set(EVENT_NAMES.values())
for _name, _schema in _EVENT_SCHEMAS.items():
    _SCHEMAS[f"Event-{_name}"] = _schema

_SSE_DESCRIPTION = (
    "text/event-stream. Each event is one JobProgress: `event:` is one of "
    + ", ".join(f"`{n}`" for n in _EVENT_SCHEMAS)
    + "; `data:` is JSON (schemas Event-*); `id:` is the job's event sequence (single job) or a cursor of "
    "per-job sequences (/api/events?jobs=) or the WatchJobs cursor (/api/events). A `: ping` comment is "
    "sent at once (with `retry:`) and every heartbeat interval. The stream closes after the terminal event "
    "(`job-completed` or `job-failed`); /api/events without jobs never closes. Reconnect with "
    "Last-Event-ID to resume exactly; a cursor older than the kept history yields `resync` with a snapshot. "
    "Responses carry Cache-Control: no-store and X-Accel-Buffering: no and are never compressed. "
    "See docs/api.md."
)
_SSE_RESPONSE = {
    "description": "An SSE stream",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string", "description": _SSE_DESCRIPTION},
            "x-sse-events": {name: _ref(f"Event-{name}") for name in _EVENT_SCHEMAS},
        }
    },
}


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_PREVIEW_REVISION = {
    "name": "revision",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "description": "The revision Preview.videoUrl names (E005 once a longer one replaced it); else the last",
}


def _artifact(what: str, media: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"The {what} of a succeeded job, streamed from JobService.ReadJobArtifact",
            "parameters": [_JOB_ID, _RANGE, _CORRELATION],
            "responses": {
                "200": {"description": "The whole file", "content": {media: {}}},
                "206": {"description": "The requested range, with Content-Range", "content": {media: {}}},
                "404": _error("Unknown job or no such artifact yet (E003, E005)"),
                "416": _error("Range not satisfiable, with Content-Range: bytes */size (E006)"),
            },
        }
    }


PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness of the bridge and its gRPC server; upstream counters",
            "responses": {"200": _json("Health"), "503": _error("JobService unreachable (E013)")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text format); REELCAST_BRIDGE_METRICS=off removes the route",
            "responses": {
                "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
            },
        }
    },
    "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}},
    "/api/stages": {
        "get": {
            "summary": "The installed stages in pipeline order",
            "parameters": [_CORRELATION],
            "responses": {"200": _json("StageList")},
        }
    },
    "/api/themes": {
        "get": {
            "summary": "The visual themes plan.style may name (JobService.ListThemes), the default first",
            "parameters": [_CORRELATION],
            "responses": {"200": _json("ThemeList")},
        }
    },
    "/api/themes/{name}/preview.png": {
        "get": {
            "summary": "A PNG of a sample scene drawn in one theme, 320x180",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": _STRING},
                _CORRELATION,
            ],
            "responses": {
                "200": {"description": "The preview", "content": {"image/png": {}}},
                "400": _error("No theme of that name (E405)"),
            },
        }
    },
    "/api/jobs": {
        "get": {
            "summary": "The caller's jobs, newest first, paged",
            "parameters": [
                {"name": "pageSize", "in": "query", "schema": {**_INT, "minimum": 0, "maximum": 1000}},
                {"name": "pageToken", "in": "query", "schema": _STRING},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "pattern": _STATUS_FILTER},
                    "description": "Comma-separated words: " + ", ".join(_JOB_WORDS),
                },
                _LABEL_FILTER,
                _CORRELATION,
            ],
            "responses": {"200": _json("JobList"), "400": _error("Bad pageSize, status, label or pageToken")},
        },
        "post": {
            "summary": "Create a job; only brief.topic is required",
            "parameters": [_CORRELATION],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("CreateJobBody")}},
            },
            "responses": {
                "201": _json("Job", "Created; Location names the job"),
                "400": _error("Bad JSON, wrong types, invalid fields (E001, E002)"),
                "413": _error("Body over 64 KiB (E008)"),
                "415": _error("Body is not JSON (E012)"),
            },
        },
    },
    "/api/jobs/{jobId}": {
        "get": {
            "summary": "One job",
            "parameters": [_JOB_ID, _CORRELATION],
            "responses": {"200": _json("Job"), "404": _error("Unknown job (E003)")},
        },
        "delete": {
            "summary": "Delete the job with its events, outputs, logs and stored objects (cancelled first)",
            "description": "Open event streams of the job end with a job-failed event with deleted true.",
            "parameters": [_JOB_ID, _CORRELATION],
            "responses": {"204": {"description": "Deleted"}, "404": _error("Unknown job (E003)")},
        },
    },
    "/api/jobs/{jobId}/cancel": {
        "post": {
            "summary": "Request cancellation; the job ends with job-failed and E311-CANCELLED",
            "parameters": [_JOB_ID, _CORRELATION],
            "responses": {
                "202": _json("Job", "Accepted"),
                "404": _error("Unknown job (E003)"),
                "409": _error("Already finished (E004)"),
            },
        }
    },
    "/api/jobs/{jobId}/retry": {
        "post": {
            "summary": "Run a Failed or Cancelled job again from its first unfinished stage (a new attempt)",
            "description": "Its event stream goes on: first a job-status Queued event with retried true.",
            "parameters": [_JOB_ID, _CORRELATION],
            "responses": {
                "202": _json("Job", "Queued again"),
                "404": _error("Unknown job (E003)"),
                "409": _error("Not Failed or Cancelled (E060)"),
                "429": {
                    **_error(
                        "Its render time would pass your queued render-time quota (E061, with Retry-After), "
                        "or your videos and media are at the stored-bytes quota (E062)"
                    ),
                    "headers": {"Retry-After": {"schema": _INT, "description": "Seconds to wait (E061)"}},
                },
            },
        }
    },
    "/api/jobs/{jobId}/script": {
        "put": {
            "summary": "Edit the script of a job that is AwaitingReview (JobService.UpdateJobScript)",
            "parameters": [_JOB_ID, _CORRELATION],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("UpdateScriptBody")}},
            },
            "responses": {
                "200": _json("Job", "Edited; review.revision is one more"),
                "400": _error("Bad JSON, wrong types, invalid scenes (E001, E002)"),
                "404": _error("Unknown job (E003)"),
                "409": _error("Not awaiting review (E015) or edited meanwhile (E016)"),
                "413": _error("Body over 64 KiB (E008)"),
                "415": _error("Body is not JSON (E012)"),
            },
        }
    },
    "/api/jobs/{jobId}/approve": {
        "post": {
            "summary": "Approve the script of a job that is AwaitingReview; it is Queued again and renders",
            "description": "The body is optional: without one the current review.scenes are approved.",
            "parameters": [_JOB_ID, _CORRELATION],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("ApproveBody")}},
            },
            "responses": {
                "200": _json("Job", "Approved; the job is Queued"),
                "400": _error("Bad JSON, wrong types, invalid scenes (E001, E002)"),
                "404": _error("Unknown job (E003)"),
                "409": _error("Not awaiting review (E015)"),
                "413": _error("Body over 64 KiB (E008)"),
                "415": _error("Body is not JSON (E012)"),
            },
        }
    },
    "/api/jobs/{jobId}/output": _artifact("MP4 video", "video/mp4"),
    "/api/jobs/{jobId}/thumbnail": _artifact("JPEG thumbnail", "image/jpeg"),
    "/api/jobs/{jobId}/subtitles": _artifact("SRT subtitles", "application/x-subrip"),
    "/api/jobs/{jobId}/webvtt": _artifact("WebVTT subtitles, for a <track>", "text/vtt"),
    "/api/jobs/{jobId}/preview": {
        "get": {
            "summary": "The growing preview (MP4) of a rendering job, from JobService.ReadJobArtifact",
            "parameters": [_JOB_ID, _PREVIEW_REVISION, _RANGE, _CORRELATION],
            "responses": {
                "200": {"description": "The whole file", "content": {"video/mp4": {}}},
                "206": {
                    "description": "The requested range, with Content-Range",
                    "content": {"video/mp4": {}},
                },
                "404": _error("Unknown job, or no preview: none yet, or the job completed (E003, E005)"),
                "416": _error("Range not satisfiable, with Content-Range: bytes */size (E006)"),
            },
        }
    },
    "/api/jobs/{jobId}/failure-details": {
        "get": {
            "summary": "Diagnostics of a failed or cancelled job",
            "parameters": [_JOB_ID, _CORRELATION],
            "responses": {
                "200": _json("FailureDetails"),
                "404": _error("Unknown job or not failed (E003, E014)"),
            },
        }
    },
    "/api/jobs/{jobId}/events": {
        "get": {
            "summary": "The job's events as Server-Sent Events",
            "parameters": [_JOB_ID, _LAST_EVENT_ID, _LAST_EVENT_ID_QUERY, _CORRELATION],
            "responses": {
                "200": _SSE_RESPONSE,
                "400": _error("Unparsable Last-Event-ID (E009)"),
                "404": _error("Unknown job (E003)"),
            },
        }
    },
    "/api/events": {
        "get": {
            "summary": "Many jobs' events on one connection; each event adds jobId",
            "description": "With `jobs`, those jobs until each has ended. Without `jobs`, every job of the "
            "caller (an admin's: every user's) from now on, those created later too (a job's first event, "
            "`job-status` Queued, is its creation), on a stream that never ends: the gRPC WatchJobs stream, "
            "whose opaque cursor is each event's `id:` (and the first frame's, an `id:` alone: where the "
            "stream starts). `lastEventId=0` starts from the beginning of the retained history; a cursor "
            "older than it yields one `resync` per job. A deleted job sends `job-failed` with `deleted`.",
            "parameters": [
                {"name": "jobs", "in": "query", "schema": _STRING, "description": "Comma-separated job ids"},
                {
                    **_LABEL_FILTER,
                    "description": "Without `jobs`: only jobs carrying these labels. " + _LABEL_TERMS,
                },
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "pattern": _STATUS_FILTER},
                    "description": "Without `jobs`: only events whose job is then in one of these statuses "
                    "(a deletion always passes). Comma-separated words: " + ", ".join(_JOB_WORDS),
                },
                _LAST_EVENT_ID,
                _LAST_EVENT_ID_QUERY,
                _CORRELATION,
            ],
            "responses": {
                "200": _SSE_RESPONSE,
                "400": _error(
                    "Unparsable Last-Event-ID (without jobs: one the server never issued) or bad jobs "
                    "list, label or status (E009, E002)"
                ),
                "404": _error("An unknown job in jobs (E003)"),
            },
        }
    },
}


_MEDIA_ID = {"name": "mediaId", "in": "path", "required": True, "schema": _STRING}
PATHS.update(
    {
        "/api/media": {
            "get": {
                "summary": "The caller's uploaded media (an admin's: everyone's), newest first, paged",
                "parameters": [
                    {"name": "pageSize", "in": "query", "schema": {**_INT, "minimum": 0, "maximum": 1000}},
                    {"name": "pageToken", "in": "query", "schema": _STRING},
                    _CORRELATION,
                ],
                "responses": {"200": _json("MediaList"), "400": _error("Bad pageSize or pageToken (E002)")},
            },
            "post": {
                "summary": "Upload an image, a short clip or an audio track (JobService.UploadMedia)",
                "description": "multipart/form-data with one part named `file`. The type is sniffed from the "
                "content, never the name; pictures are re-encoded (PNG or JPEG, EXIF orientation applied, "
                "metadata dropped), clips transcoded to H.264 without audio, tracks to 48 kHz WAV. "
                "See docs/api.md, Media, for the caps.",
                "parameters": [_CORRELATION],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _obj(
                                {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                                ["file"],
                            )
                        }
                    },
                },
                "responses": {
                    "201": _json("MediaResource", "Stored; Location names the media"),
                    "400": _error("No file part, an empty file, a malformed body (E040)"),
                    "413": _error("File over REELCAST_MEDIA_MAX_BYTES (E041) or over the quota (E047)"),
                    "429": _error("File would pass the stored-bytes quota, videos included (E062)"),
                    "415": _error("Not multipart/form-data (E012), or content of no supported type (E042)"),
                    "422": _error(
                        "Too many pixels (E043), too long (E044), unreadable (E045), streams (E046)"
                    ),
                },
            },
        },
        "/api/media/{mediaId}": {
            "get": {
                "summary": "One uploaded media record",
                "parameters": [_MEDIA_ID, _CORRELATION],
                "responses": {"200": _json("MediaResource"), "404": _error("Unknown media (E048)")},
            },
            "delete": {
                "summary": "Delete an uploaded file; a queued job that uses it fails with E451",
                "parameters": [_MEDIA_ID, _CORRELATION],
                "responses": {"204": {"description": "Deleted"}, "404": _error("Unknown media (E048)")},
            },
        },
    }
)


_WEBHOOK_ID = {
    "name": "webhookId",
    "in": "path",
    "required": True,
    "description": "wh_ and 32 hex digits; anything else is 404 (E096) at once.",
    "schema": _STRING,
}
_WEBHOOK_EXAMPLE = {
    "webhookId": "wh_5d0c3b7e9a6f4e2d8c1b0a9f8e7d6c5b",
    "url": "https://example.com/hooks/reelcast",
    "filter": "terminal",
    "statuses": [],
    "labels": {"project": "otters"},
    "failing": False,
    "lastError": "",
}
_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_NO_WEBHOOKS = "The store has no webhooks (NATS, for now: E095)"


def _json_example(schema: str, example: Any, description: str = "OK") -> dict[str, Any]:
    response = _json(schema, description)
    response["content"]["application/json"]["example"] = example
    return response


PATHS.update(
    {
        "/api/webhooks": {
            "get": {
                "summary": "The caller's webhook endpoints, by id, paged; without their secrets",
                "parameters": [
                    {"name": "pageSize", "in": "query", "schema": {**_INT, "minimum": 0, "maximum": 1000}},
                    {"name": "pageToken", "in": "query", "schema": _STRING},
                    _CORRELATION,
                ],
                "responses": {
                    "200": _json_example(
                        "WebhookList", {"webhooks": [_WEBHOOK_EXAMPLE], "nextPageToken": ""}
                    ),
                    "400": _error("Bad pageSize or pageToken (E002)"),
                    "409": _error(_NO_WEBHOOKS),
                },
            },
            "post": {
                "summary": "Register a webhook endpoint (JobService.CreateWebhook); the answer holds its "
                "signing secret, shown only here",
                "description": "Each event of the caller's jobs that matches the filter and labels is POSTed "
                "to the URL, signed per Standard Webhooks. See docs/webhooks.md.",
                "parameters": [_CORRELATION],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("CreateWebhookBody"),
                            "example": {
                                "url": "https://example.com/hooks/reelcast",
                                "filter": "terminal",
                                "labels": {"project": "otters"},
                            },
                        }
                    },
                },
                "responses": {
                    "201": _json_example(
                        "CreatedWebhook", {**_WEBHOOK_EXAMPLE, "secret": _SECRET_EXAMPLE}, "Registered"
                    ),
                    "400": _error(
                        "Bad JSON, wrong types, a filter that disagrees with statuses (E002), a URL that is "
                        "not absolute http(s) (E090), or a host at a refused address (E091)"
                    ),
                    "409": _error(_NO_WEBHOOKS),
                    "413": _error("Body over 64 KiB (E008)"),
                    "415": _error("Body is not JSON (E012)"),
                    "502": _error("The URL's host does not resolve now (E093): try again, or fix the name"),
                },
            },
        },
        "/api/webhooks/{webhookId}": {
            "delete": {
                "summary": "Remove an endpoint: nothing more is delivered to it",
                "parameters": [_WEBHOOK_ID, _CORRELATION],
                "responses": {
                    "204": {"description": "Deleted"},
                    "404": _error("Unknown endpoint, or another user's (E096)"),
                    "409": _error(_NO_WEBHOOKS),
                },
            }
        },
        "/api/webhooks/{webhookId}/rotate-secret": {
            "post": {
                "summary": "Give an endpoint a new secret; the previous one signs beside it for the overlap",
                "parameters": [_WEBHOOK_ID, _CORRELATION],
                "responses": {
                    "200": _json_example(
                        "WebhookSecret",
                        {"webhookId": _WEBHOOK_EXAMPLE["webhookId"], "secret": _SECRET_EXAMPLE},
                        "The new secret",
                    ),
                    "404": _error("Unknown endpoint, or another user's (E096)"),
                    "409": _error(_NO_WEBHOOKS),
                },
            }
        },
        "/api/webhooks/{webhookId}/replay": {
            "post": {
                "summary": "Redeliver a job's events from a sequence, or deliveries since a time",
                "description": "Give jobId (with fromSequence), or since; the deliveries run in the "
                "background with the usual retries, with their original webhook-id.",
                "parameters": [_WEBHOOK_ID, _CORRELATION],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("ReplayWebhookBody"),
                            "examples": {
                                "job": {
                                    "value": {"jobId": "3f2a9c0e1b7d4a5f8e6c2b1a0d9f8e7c", "fromSequence": 5}
                                },
                                "since": {"value": {"since": "2026-12-01T09:00:00Z"}},
                            },
                        }
                    },
                },
                "responses": {
                    "202": _json_example(
                        "WebhookReplay",
                        {"webhookId": _WEBHOOK_EXAMPLE["webhookId"], "replayed": 7},
                        "Accepted; how many events are redelivered",
                    ),
                    "400": _error("Bad JSON or wrong types; both or neither of jobId and since (E002)"),
                    "404": _error("Unknown endpoint or job, or another user's (E096, E003)"),
                    "409": _error(_NO_WEBHOOKS),
                    "413": _error("Body over 64 KiB (E008)"),
                    "415": _error("Body is not JSON (E012)"),
                },
            }
        },
    }
)


_OPEN_PATHS = {"/healthz", "/api/openapi.json", "/login", "/api/session"}
_TOKEN_PATHS = {
    "/api/jobs/{jobId}",
    "/api/jobs/{jobId}/events",
    "/api/jobs/{jobId}/output",
    "/api/jobs/{jobId}/thumbnail",
    "/api/jobs/{jobId}/subtitles",
    "/api/jobs/{jobId}/webvtt",
    "/api/jobs/{jobId}/preview",
}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `reelcast keys create`."},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "reelcast_session",
        "description": "HttpOnly, SameSite=Strict session cookie from POST /api/session.",
    },
    "streamToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A short-lived token for one job and one user, from "
        "POST /api/jobs/{jobId}/stream-token. "
        "Only on GET routes of that job.",
    },
}
PATHS.update(
    {
        "/login": {
            "get": {
                "summary": "The first-start login URL: exchanges ?key= for a session cookie, then redirects",
                "parameters": [{"name": "key", "in": "query", "required": True, "schema": _STRING}],
                "responses": {
                    "200": {
                        "description": "A page that asks before logging in (the link came from another "
                        "site, or this browser holds another user's session); it posts to POST /login",
                        "content": {"text/html": {"schema": _STRING}},
                    },
                    "303": {"description": "Logged in; redirect to the web page"},
                    "401": _error("Not a valid key (E020)"),
                },
            }
        },
        "/api/session": {
            "post": {
                "summary": "Log in: exchanges an API key (Bearer, or {apiKey}) for a session cookie",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("SessionBody")}},
                },
                "responses": {
                    "201": _json("SessionUser", "Logged in; Set-Cookie: reelcast_session"),
                    "401": _error("Not a valid key (E020)"),
                    "403": _error("Not from the bridge's own origin: Origin, else Sec-Fetch-Site (E024)"),
                    "413": _error("Body over 4 KiB (E008)"),
                    "415": _error("A body that is not application/json (E012)"),
                },
            },
            "delete": {
                "summary": "Log out: forgets the session and clears the cookie",
                "responses": {"204": {"description": "Logged out"}},
            },
        },
        "/api/jobs/{jobId}/stream-token": {
            "post": {
                "summary": "A short-lived token for ?token= on this job's GET routes (EventSource, <video>)",
                "parameters": [_JOB_ID],
                "responses": {
                    "201": _json("StreamToken", "The token"),
                    "400": _error(
                        "Authentication is off, or the caller's credential is a stream token (E002)"
                    ),
                    "404": _error("Unknown job (E003)"),
                },
            }
        },
    }
)
for _path, _item in PATHS.items():
    for _method, _operation in _item.items():
        _responses = _operation.setdefault("responses", {})
        if _path in _OPEN_PATHS:
            _operation["security"] = []
            continue
        _operation["security"] = [{"bearer": []}, {"session": []}]
        if _path in _TOKEN_PATHS and _method == "get":
            _operation["security"].append({"streamToken": []})
        _responses.setdefault("401", _error("No valid credential (E020)"))
for _path, _method in (("/api/jobs", "post"), ("/api/jobs/{jobId}/events", "get"), ("/api/events", "get")):
    PATHS[_path][_method]["responses"]["429"] = {
        **_error(
            "Too many jobs created or unfinished, too much render time queued (E061, POST /api/jobs), the "
            "stored-bytes quota reached (E062, POST /api/jobs, no Retry-After), or too many open event "
            "streams (E021, E022, E023)"
        ),
        "headers": {"Retry-After": {"schema": _INT, "description": "Seconds to wait (not with E062)"}},
    }


def openapi_document(auth_required: bool = True) -> dict[str, Any]:
    """The document of a bridge; without authentication (REELCAST_AUTH=off) no operation requires any."""
    paths = PATHS
    if not auth_required:
        paths = {
            path: {
                method: {key: value for key, value in operation.items() if key != "security"}
                for method, operation in item.items()
            }
            for path, item in PATHS.items()
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reelcast bridge",
            "version": "1",
            "description": "REST and Server-Sent Events in front of the reelcast JobService. Every 4xx and "
            "5xx has the Problem body. See docs/api.md.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS, "securitySchemes": _SECURITY_SCHEMES},
    }
