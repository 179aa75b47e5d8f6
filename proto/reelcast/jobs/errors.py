"""The one error catalogue.

Every failure a client can see has a code here with a message, a remediation and suggested actions.
docs/errors.md is generated from this module (``python -m reelcast.jobs.errors``) and a test keeps the
two in sync. Codes are grouped by hundred: E0xx requests, E1xx script, E2xx voice, E3xx render and job
runtime, E4xx visuals, E5xx internal, E6xx resources, E7xx lifecycle. E02x are authentication
and limits; E03x the process's own configuration, refused at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True)
class ErrorCode:
    """One catalogue entry."""

    code: str
    title: str
    message: str
    remediation: str
    grpc_status: grpc.StatusCode
    http_status: int
    suggested_actions: tuple[str, ...] = ()


CATALOGUE: dict[str, ErrorCode] = {}


def _define(
    code: str,
    title: str,
    message: str,
    remediation: str,
    grpc_status: grpc.StatusCode,
    http_status: int,
    suggested_actions: Sequence[str] = (),
) -> ErrorCode:
    if code in CATALOGUE:
        raise ValueError(f"duplicate error code {code}")
    entry = ErrorCode(code, title, message, remediation, grpc_status, http_status, tuple(suggested_actions))
    CATALOGUE[code] = entry
    return entry


_S = grpc.StatusCode

INVALID_SPEC = _define(
    "E001-INVALID_SPEC",
    "Invalid job spec",
    "The job spec has invalid fields.",
    "Fix the fields listed in the field violations and submit again.",
    _S.INVALID_ARGUMENT,
    400,
)
INVALID_REQUEST = _define(
    "E002-INVALID_REQUEST",
    "Invalid request",
    "The request is malformed.",
    "Check the request against the API reference (docs/api.md) and the field violations.",
    _S.INVALID_ARGUMENT,
    400,
)
JOB_NOT_FOUND = _define(
    "E003-JOB_NOT_FOUND",
    "Job not found",
    "No such job.",
    "Check the job id; list your jobs to find it. Finished jobs are deleted after the retention period.",
    _S.NOT_FOUND,
    404,
)
JOB_ALREADY_FINISHED = _define(
    "E004-JOB_ALREADY_FINISHED",
    "Job already finished",
    "The job has already finished, so it cannot be cancelled.",
    "Nothing to do: the job reached a terminal status. Create a new job to run it again.",
    _S.FAILED_PRECONDITION,
    409,
)
ARTIFACT_NOT_FOUND = _define(
    "E005-ARTIFACT_NOT_FOUND",
    "Artifact not available",
    "The job has no such output file.",
    "Wait for the job to succeed; subtitles exist only when captions were requested.",
    _S.NOT_FOUND,
    404,
)
RANGE_NOT_SATISFIABLE = _define(
    "E006-RANGE_NOT_SATISFIABLE",
    "Range not satisfiable",
    "The requested byte range starts past the end of the file.",
    "Request a range within the file's size.",
    _S.OUT_OF_RANGE,
    416,
)
SERVER_SHUTTING_DOWN = _define(
    "E007-SERVER_SHUTTING_DOWN",
    "Server shutting down",
    "The server is shutting down and accepts no new jobs.",
    "Retry in a few seconds, against another instance if you have one.",
    _S.UNAVAILABLE,
    503,
)
# HTTP-only codes of the bridge (bridge/): requests that never reach JobService.
BODY_TOO_LARGE = _define(
    "E008-BODY_TOO_LARGE",
    "Request body too large",
    "The request body exceeds the 64 KiB limit.",
    "Send a smaller body; a job spec never needs more than a few KiB.",
    _S.INVALID_ARGUMENT,
    413,
)
INVALID_EVENT_ID = _define(
    "E009-INVALID_EVENT_ID",
    "Invalid event id",
    "The Last-Event-ID header or lastEventId parameter is not an event id this stream issued.",
    "Reconnect without Last-Event-ID to replay the whole stream, or pass an id received from it.",
    _S.INVALID_ARGUMENT,
    400,
)
ROUTE_NOT_FOUND = _define(
    "E010-ROUTE_NOT_FOUND",
    "No such endpoint",
    "The path does not name an endpoint of the API.",
    "Check the path against the API reference (docs/api.md or /api/openapi.json).",
    _S.NOT_FOUND,
    404,
)
METHOD_NOT_ALLOWED = _define(
    "E011-METHOD_NOT_ALLOWED",
    "Method not allowed",
    "The endpoint does not accept this HTTP method.",
    "Use a method listed in the Allow header.",
    _S.UNIMPLEMENTED,
    405,
)
UNSUPPORTED_MEDIA_TYPE = _define(
    "E012-UNSUPPORTED_MEDIA_TYPE",
    "Unsupported media type",
    "The request body must be JSON.",
    "Send the body with Content-Type: application/json.",
    _S.INVALID_ARGUMENT,
    415,
)
UPSTREAM_UNAVAILABLE = _define(
    "E013-UPSTREAM_UNAVAILABLE",
    "Job service unavailable",
    "The bridge cannot reach the gRPC job service.",
    "Retry in a few seconds; check that `reelcast serve` is running at the bridge's --grpc-target.",
    _S.UNAVAILABLE,
    503,
)
NO_FAILURE_DETAILS = _define(
    "E014-NO_FAILURE_DETAILS",
    "No failure details",
    "The job has not failed, so it has no failure details.",
    "Read the job's status; failure details exist once it ends with Failed.",
    _S.NOT_FOUND,
    404,
)

UNAUTHENTICATED = _define(
    "E020-UNAUTHENTICATED",
    "Authentication required",
    "The request carries no valid credential.",
    "Send `authorization: Bearer <key>` (gRPC metadata or HTTP header), a session cookie from "
    "POST /api/session, or a current stream token. Create keys with `reelcast keys create`.",
    _S.UNAUTHENTICATED,
    401,
    ["Create a key with `reelcast keys create --user NAME`", "Check that the key was not revoked"],
)
RATE_LIMITED = _define(
    "E021-RATE_LIMITED",
    "Too many jobs created",
    "You are creating jobs faster than allowed.",
    "Wait for the time given in Retry-After (or google.rpc.RetryInfo) and try again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Retry after the indicated delay"],
)
TOO_MANY_ACTIVE_JOBS = _define(
    "E022-TOO_MANY_ACTIVE_JOBS",
    "Too many unfinished jobs",
    "You have as many queued and running jobs as allowed.",
    "Wait for one of your jobs to finish, or cancel one, then submit again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Cancel a job you no longer need", "Retry after the indicated delay"],
)
TOO_MANY_STREAMS = _define(
    "E023-TOO_MANY_STREAMS",
    "Too many open event streams",
    "You have as many open event streams as allowed.",
    "Close an open event stream (a browser tab, or a WatchJob call you no longer read), or follow several"
    " jobs on one /api/events stream; then retry after the delay the error gives.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Close an event stream", "Use /api/events?jobs=... for several jobs"],
)
ORIGIN_NOT_ALLOWED = _define(
    "E024-ORIGIN_NOT_ALLOWED",
    "Cross-site request refused",
    "The request comes from an origin that is not allowed.",
    "Call the API from the page the bridge serves, or add the origin to REELCAST_CORS_ORIGINS.",
    _S.PERMISSION_DENIED,
    403,
)
HOST_NOT_ALLOWED = _define(
    "E025-HOST_NOT_ALLOWED",
    "Host not allowed",
    "The request's Host header names a host this bridge does not answer.",
    "Open the bridge by an allowed name (its listen address or localhost), or add the name to "
    "REELCAST_ALLOWED_HOSTS / --allowed-hosts.",
    _S.INVALID_ARGUMENT,
    400,
)
HEADERS_TOO_LARGE = _define(
    "E026-HEADERS_TOO_LARGE",
    "Request headers too large",
    "The request line and headers exceed the size limit.",
    "Send fewer or smaller headers (cookies included); the limit is REELCAST_MAX_HEADER_BYTES.",
    _S.INVALID_ARGUMENT,
    431,
)
REQUEST_TIMEOUT = _define(
    "E027-REQUEST_TIMEOUT",
    "Request not received in time",
    "The request did not arrive whole within the request timeout.",
    "Send the whole request (headers and body) at once; the limit is REELCAST_REQUEST_TIMEOUT.",
    _S.DEADLINE_EXCEEDED,
    408,
)

# E03x: the process's own configuration, found at start (the CLI prints them; no client ever sees one).
NATS_NOT_INSTALLED = _define(
    "E030-NATS_NOT_INSTALLED",
    "NATS extra not installed",
    "The nats:// store needs the NATS client, which this install does not include.",
    "Install the extra with `pip install 'reelcast[nats]'`, or leave --store / REELCAST_STORE empty for the "
    "embedded SQLite store.",
    _S.FAILED_PRECONDITION,
    500,
    ["Run `pip install 'reelcast[nats]'`", "Unset --store / REELCAST_STORE to use the embedded store"],
)
LISTEN_FAILED = _define(
    "E031-LISTEN_FAILED",
    "Cannot listen on the address",
    "The address to listen on is taken by another process, or is not an address of this machine.",
    "Stop the process that holds the port, or choose another with --grpc-listen / --http-listen "
    "(port 0 picks a free one).",
    _S.FAILED_PRECONDITION,
    500,
    ["Find the process with `ss -ltnp`", "Listen on another port"],
)

BRIEF_INVALID = _define(
    "E101-BRIEF_INVALID",
    "Brief cannot be scripted",
    "The brief does not contain enough usable text to write a script.",
    "Give a topic with at least one word of letters or digits.",
    _S.INVALID_ARGUMENT,
    400,
    ["Rephrase the topic", "Add an audience and a goal to the brief"],
)
SCRIPT_INVALID = _define(
    "E102-SCRIPT_INVALID",
    "Supplied script is invalid",
    "The user-supplied script has a scene without narration or a scene that is too long.",
    "Give every scene 1 to 2000 characters of narration, and at most 100 scenes.",
    _S.INVALID_ARGUMENT,
    400,
    ["Check each scene's narration", "Split long scenes"],
)
LANGUAGE_UNSUPPORTED = _define(
    "E103-LANGUAGE_UNSUPPORTED",
    "Language not supported",
    "The script writer has no template for the requested language.",
    "Use a supported language (see docs/stages.md) or supply your own script.",
    _S.INVALID_ARGUMENT,
    400,
    ["Set brief.language to 'en'", "Supply a script in your language"],
)

VOICE_UNKNOWN = _define(
    "E201-VOICE_UNKNOWN",
    "Unknown voice",
    "The requested voice is not installed.",
    "Choose one of the available voices listed in the message.",
    _S.INVALID_ARGUMENT,
    400,
    ["List voices with `reelcast voices`", "Leave the voice empty to use the language's default"],
)
TTS_FAILED = _define(
    "E202-TTS_FAILED",
    "Speech synthesis failed",
    "The speech engine could not synthesize the narration.",
    "Check that espeakng-loader is installed correctly; retry the job.",
    _S.INTERNAL,
    500,
    ["Reinstall reelcast to restore espeakng-loader", "Retry the job"],
)
NARRATION_TOO_LONG = _define(
    "E203-NARRATION_TOO_LONG",
    "Narration too long",
    "The spoken narration runs past the duration limit.",
    "Shorten the script: numbers, abbreviations and long words take longer to say than their words suggest.",
    _S.INVALID_ARGUMENT,
    400,
    ["Shorten the scenes' narration", "Write long numbers in words or round them", "Raise the voice rate"],
)

FFMPEG_NOT_FOUND = _define(
    "E302-FFMPEG_NOT_FOUND",
    "FFmpeg not found",
    "The ffmpeg executable could not be found or started.",
    "Reinstall reelcast so that imageio-ffmpeg provides ffmpeg, or set REELCAST_FFMPEG to a working ffmpeg.",
    _S.FAILED_PRECONDITION,
    500,
    ["Run `pip install --force-reinstall imageio-ffmpeg`", "Check REELCAST_FFMPEG"],
)
FFMPEG_RUNTIME = _define(
    "E304-FFMPEG_RUNTIME",
    "FFmpeg render failed",
    "FFmpeg exited with an error while rendering.",
    "Read the stderr snippet and the log; check custom encoder options in the configuration.",
    _S.INTERNAL,
    500,
    [
        "Open the FFmpeg log at the log path",
        "Remove custom encoder options (REELCAST_FFMPEG_EXTRA_ARGS)",
        "Retry with a lower resolution",
    ],
)
JOB_STALLED = _define(
    "E305-JOB_STALLED",
    "Job stalled",
    "A stage reported no progress for too long and was stopped.",
    "Retry the job; if it stalls again, raise the stall timeout or check the machine's load.",
    _S.DEADLINE_EXCEEDED,
    500,
    ["Retry the job", "Check CPU and disk load on the server", "Raise REELCAST_STALL_TIMEOUT"],
)
ARTIFACT_MISSING = _define(
    "E306-ARTIFACT_MISSING",
    "Stage input missing",
    "A stage did not find the files an earlier stage should have produced.",
    "Check that a plugin replacing a built-in stage publishes the same artifacts (see docs/stages.md).",
    _S.FAILED_PRECONDITION,
    500,
    ["Check replaced stages against docs/stages.md", "Retry the job"],
)
RENDER_TIMEOUT = _define(
    "E308-RENDER_TIMEOUT",
    "Render timed out",
    "The render took longer than the configured limit.",
    "Shorten the video, lower the resolution, or raise REELCAST_RENDER_TIMEOUT.",
    _S.DEADLINE_EXCEEDED,
    500,
    ["Lower the resolution", "Shorten the target duration", "Raise REELCAST_RENDER_TIMEOUT"],
)
STAGE_FAILED = _define(
    "E309-STAGE_FAILED",
    "Stage failed",
    "A stage failed with an unexpected error.",
    "Retry the job. If it fails again, report it with the correlation id.",
    _S.INTERNAL,
    500,
    ["Retry the job", "Report the correlation id to the operator"],
)
OUTPUT_INVALID = _define(
    "E310-OUTPUT_INVALID",
    "Output failed verification",
    "The rendered video did not decode cleanly.",
    "Retry the job; check free disk space and the FFmpeg log.",
    _S.INTERNAL,
    500,
    ["Retry the job", "Open the FFmpeg log at the log path"],
)
CANCELLED = _define(
    "E311-CANCELLED",
    "Job cancelled",
    "The job was cancelled.",
    "Create the job again if you still want the video.",
    _S.CANCELLED,
    409,
)
STAGE_MISSING = _define(
    "E312-STAGE_MISSING",
    "Stage not installed",
    "A stage this job needs is not installed or was disabled.",
    "Install the plugin that provides it, or remove it from REELCAST_DISABLED_PLUGINS.",
    _S.FAILED_PRECONDITION,
    500,
)

VISUALS_FAILED = _define(
    "E401-VISUALS_FAILED",
    "Visuals failed",
    "The scene images could not be drawn.",
    "Retry the job; check free disk space.",
    _S.INTERNAL,
    500,
)

INTERNAL = _define(
    "E500-INTERNAL",
    "Internal error",
    "An internal error occurred.",
    "Retry; if it persists, report the correlation id to the operator.",
    _S.INTERNAL,
    500,
)

LOW_DISK_SPACE = _define(
    "E601-LOW_DISK_SPACE",
    "Low disk space",
    "There is too little free disk space to run the next stage.",
    "Free disk space in the data directory or lower the retention period (`reelcast gc`).",
    _S.RESOURCE_EXHAUSTED,
    507,
    ["Run `reelcast gc`", "Free disk space in the data directory"],
)

INTERRUPTED = _define(
    "E701-INTERRUPTED",
    "Job interrupted",
    "The job was interrupted by restarts more often than allowed.",
    "Retry the job; check the server's logs for why it restarted.",
    _S.ABORTED,
    500,
    ["Retry the job", "Check the server's logs"],
)

WORKER_LOST = _define(
    "E702-WORKER_LOST",
    "Worker lost",
    "The workers running the job stopped responding more often than allowed.",
    "Retry the job; check the workers' logs and resources (memory, disk) for why they died.",
    _S.ABORTED,
    500,
    ["Retry the job", "Check the workers' logs"],
)


@dataclass
class ReelcastError(Exception):
    """An error with a catalogue code. Stages raise it to fail a job with a precise code.

    ``detail`` replaces the catalogue message when given; it must not contain secrets or stack traces,
    because clients see it.
    """

    error: ErrorCode
    detail: str = ""
    stderr_snippet: str = ""
    log_path: str = ""
    suggested_actions: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.detail or self.error.message

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.suggested_actions) or self.error.suggested_actions


def lookup(code: str) -> ErrorCode:
    """Returns the catalogue entry of ``code``; KeyError if it is not catalogued."""
    return CATALOGUE[code]


def render_markdown(entries: Iterable[ErrorCode] | None = None) -> str:
    """The catalogue as docs/errors.md."""
    lines = [
        "# Error catalogue",
        "",
        "Every error a client sees carries one of these codes, a message, a remediation and the",
        "`correlationId` of the request or job. Generated from `proto/reelcast/jobs/errors.py` by",
        "`python -m reelcast.jobs.errors > docs/errors.md`; a test keeps the two in sync.",
        "",
        "| Code | Title | gRPC | HTTP | Message | Remediation | Suggested actions |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in entries if entries is not None else CATALOGUE.values():
        actions = "; ".join(entry.suggested_actions) or "—"
        lines.append(
            f"| `{entry.code}` | {entry.title} | {entry.grpc_status.name} | {entry.http_status} "
            f"| {entry.message} | {entry.remediation} | {actions} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
