"""The catalogue's request codes: E0xx are requests and the HTTP surface, E02x authentication and limits,
E03x the process's own configuration (refused at start). Import them through ``reelcast.jobs.errors``."""

from __future__ import annotations

import grpc

from reelcast.jobs.error_codes import define

__all__ = [
    "ARTIFACT_NOT_FOUND",
    "BODY_TOO_LARGE",
    "HEADERS_TOO_LARGE",
    "HOST_NOT_ALLOWED",
    "INVALID_EVENT_ID",
    "INVALID_REQUEST",
    "INVALID_SPEC",
    "INVALID_WATCH_CURSOR",
    "JOB_ALREADY_FINISHED",
    "JOB_NOT_AWAITING_REVIEW",
    "JOB_NOT_FOUND",
    "JOB_NOT_RETRYABLE",
    "LISTEN_FAILED",
    "METHOD_NOT_ALLOWED",
    "NATS_NOT_INSTALLED",
    "NO_FAILURE_DETAILS",
    "ORIGIN_NOT_ALLOWED",
    "OWNER_NOT_ALLOWED",
    "RANGE_NOT_SATISFIABLE",
    "RATE_LIMITED",
    "RENDER_TIME_QUOTA_EXCEEDED",
    "REQUEST_TIMEOUT",
    "REVIEW_REVISION_STALE",
    "ROUTE_NOT_FOUND",
    "SERVER_SHUTTING_DOWN",
    "STORAGE_QUOTA_EXCEEDED",
    "TOO_MANY_ACTIVE_JOBS",
    "TOO_MANY_STREAMS",
    "UNAUTHENTICATED",
    "UNSUPPORTED_MEDIA_TYPE",
    "UPSTREAM_UNAVAILABLE",
]

_S = grpc.StatusCode

INVALID_SPEC = define(
    "E001-INVALID_SPEC",
    "Invalid job spec",
    "The job spec has invalid fields.",
    "Fix the fields listed in the field violations and submit again.",
    _S.INVALID_ARGUMENT,
    400,
)
INVALID_REQUEST = define(
    "E002-INVALID_REQUEST",
    "Invalid request",
    "The request is malformed.",
    "Check the request against the API reference (docs/api.md) and the field violations.",
    _S.INVALID_ARGUMENT,
    400,
)
JOB_NOT_FOUND = define(
    "E003-JOB_NOT_FOUND",
    "Job not found",
    "No such job.",
    "Check the job id; list your jobs to find it. Finished jobs are deleted after the retention period.",
    _S.NOT_FOUND,
    404,
)
JOB_ALREADY_FINISHED = define(
    "E004-JOB_ALREADY_FINISHED",
    "Job already finished",
    "The job has already finished, so it cannot be cancelled.",
    "Nothing to do: the job reached a terminal status. Create a new job to run it again.",
    _S.FAILED_PRECONDITION,
    409,
)
ARTIFACT_NOT_FOUND = define(
    "E005-ARTIFACT_NOT_FOUND",
    "Artifact not available",
    "The job has no such output file.",
    "Wait for the job to succeed; subtitles exist only when captions were requested, and a preview only"
    " while a render publishes one (then read the output).",
    _S.NOT_FOUND,
    404,
)
RANGE_NOT_SATISFIABLE = define(
    "E006-RANGE_NOT_SATISFIABLE",
    "Range not satisfiable",
    "The requested byte range starts past the end of the file.",
    "Request a range within the file's size.",
    _S.OUT_OF_RANGE,
    416,
)
SERVER_SHUTTING_DOWN = define(
    "E007-SERVER_SHUTTING_DOWN",
    "Server shutting down",
    "The server is shutting down and accepts no new jobs.",
    "Retry in a few seconds, against another instance if you have one.",
    _S.UNAVAILABLE,
    503,
)
# HTTP-only codes of the bridge (bridge/): requests that never reach JobService.
BODY_TOO_LARGE = define(
    "E008-BODY_TOO_LARGE",
    "Request body too large",
    "The request body exceeds the 64 KiB limit.",
    "Send a smaller body; a job spec never needs more than a few KiB.",
    _S.INVALID_ARGUMENT,
    413,
)
INVALID_EVENT_ID = define(
    "E009-INVALID_EVENT_ID",
    "Invalid event id",
    "The Last-Event-ID header or lastEventId parameter is not an event id this stream issued.",
    "Reconnect without Last-Event-ID to replay the whole stream, or pass an id received from it.",
    _S.INVALID_ARGUMENT,
    400,
)
ROUTE_NOT_FOUND = define(
    "E010-ROUTE_NOT_FOUND",
    "No such endpoint",
    "The path does not name an endpoint of the API.",
    "Check the path against the API reference (docs/api.md or /api/openapi.json).",
    _S.NOT_FOUND,
    404,
)
METHOD_NOT_ALLOWED = define(
    "E011-METHOD_NOT_ALLOWED",
    "Method not allowed",
    "The endpoint does not accept this HTTP method.",
    "Use a method listed in the Allow header.",
    _S.UNIMPLEMENTED,
    405,
)
UNSUPPORTED_MEDIA_TYPE = define(
    "E012-UNSUPPORTED_MEDIA_TYPE",
    "Unsupported media type",
    "The request body must be JSON.",
    "Send the body with Content-Type: application/json.",
    _S.INVALID_ARGUMENT,
    415,
)
UPSTREAM_UNAVAILABLE = define(
    "E013-UPSTREAM_UNAVAILABLE",
    "Job service unavailable",
    "The bridge cannot reach the gRPC job service.",
    "Retry in a few seconds; check that `reelcast serve` is running at the bridge's --grpc-target.",
    _S.UNAVAILABLE,
    503,
)
NO_FAILURE_DETAILS = define(
    "E014-NO_FAILURE_DETAILS",
    "No failure details",
    "The job has not failed, so it has no failure details.",
    "Read the job's status; failure details exist once it ends with Failed.",
    _S.NOT_FOUND,
    404,
)
# Review before render (JobSpec.review_script): edits and approval of a waiting job's script.
JOB_NOT_AWAITING_REVIEW = define(
    "E015-JOB_NOT_AWAITING_REVIEW",
    "Job not awaiting review",
    "The job does not wait for a script review, so its script cannot be edited or approved.",
    "Create the job with review_script (REST reviewScript, CLI --review) and edit it while its status is "
    "AwaitingReview; read the job's status first.",
    _S.FAILED_PRECONDITION,
    409,
)
REVIEW_REVISION_STALE = define(
    "E016-REVIEW_REVISION_STALE",
    "Script changed meanwhile",
    "The script was edited since the revision this edit was made from.",
    "Read the job again, apply your changes to its current review.scenes and send its review.revision.",
    _S.ABORTED,
    409,
)
# WatchJobs (and SSE /api/events without a job list): one stream of all of a user's jobs.
INVALID_WATCH_CURSOR = define(
    "E017-INVALID_WATCH_CURSOR",
    "Invalid stream cursor",
    "The cursor is not one this server issued: malformed, or past the newest event it stored.",
    "Pass the cursor of a WatchJobs response (the id of an /api/events event) unchanged, or none to start"
    " from now.",
    _S.INVALID_ARGUMENT,
    400,
)
OWNER_NOT_ALLOWED = define(
    "E018-OWNER_NOT_ALLOWED",
    "Owner not allowed",
    "Only an admin may watch the jobs of another user.",
    "Leave owner empty to watch your own jobs, or use an admin key.",
    _S.PERMISSION_DENIED,
    403,
)

UNAUTHENTICATED = define(
    "E020-UNAUTHENTICATED",
    "Authentication required",
    "The request carries no valid credential.",
    "Send `authorization: Bearer <key>` (gRPC metadata or HTTP header), a session cookie from "
    "POST /api/session, or a current stream token. Create keys with `reelcast keys create`.",
    _S.UNAUTHENTICATED,
    401,
    ["Create a key with `reelcast keys create --user NAME`", "Check that the key was not revoked"],
)
RATE_LIMITED = define(
    "E021-RATE_LIMITED",
    "Too many jobs created",
    "You are creating jobs faster than allowed.",
    "Wait for the time given in Retry-After (or google.rpc.RetryInfo) and try again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Retry after the indicated delay"],
)
TOO_MANY_ACTIVE_JOBS = define(
    "E022-TOO_MANY_ACTIVE_JOBS",
    "Too many unfinished jobs",
    "You have as many queued and running jobs as allowed.",
    "Wait for one of your jobs to finish, or cancel one, then submit again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Cancel a job you no longer need", "Retry after the indicated delay"],
)
TOO_MANY_STREAMS = define(
    "E023-TOO_MANY_STREAMS",
    "Too many open event streams",
    "You have as many open event streams as allowed.",
    "Close an open event stream (a browser tab, or a WatchJob call you no longer read), or follow several"
    " jobs on one /api/events stream; then retry after the delay the error gives.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Close an event stream", "Use /api/events?jobs=... for several jobs"],
)
ORIGIN_NOT_ALLOWED = define(
    "E024-ORIGIN_NOT_ALLOWED",
    "Cross-site request refused",
    "The request comes from an origin that is not allowed.",
    "Call the API from the page the bridge serves, or add the origin to REELCAST_CORS_ORIGINS.",
    _S.PERMISSION_DENIED,
    403,
)
HOST_NOT_ALLOWED = define(
    "E025-HOST_NOT_ALLOWED",
    "Host not allowed",
    "The request's Host header names a host this bridge does not answer.",
    "Open the bridge by an allowed name (its listen address or localhost), or add the name to "
    "REELCAST_ALLOWED_HOSTS / --allowed-hosts.",
    _S.INVALID_ARGUMENT,
    400,
)
HEADERS_TOO_LARGE = define(
    "E026-HEADERS_TOO_LARGE",
    "Request headers too large",
    "The request line and headers exceed the size limit.",
    "Send fewer or smaller headers (cookies included); the limit is REELCAST_MAX_HEADER_BYTES.",
    _S.INVALID_ARGUMENT,
    431,
)
REQUEST_TIMEOUT = define(
    "E027-REQUEST_TIMEOUT",
    "Request not received in time",
    "The request did not arrive whole within the request timeout.",
    "Send the whole request (headers and body) at once; the limit is REELCAST_REQUEST_TIMEOUT.",
    _S.DEADLINE_EXCEEDED,
    408,
)

# E03x: the process's own configuration, found at start (the CLI prints them; no client ever sees one).
NATS_NOT_INSTALLED = define(
    "E030-NATS_NOT_INSTALLED",
    "NATS extra not installed",
    "The nats:// store needs the NATS client, which this install does not include.",
    "Install the extra with `pip install 'reelcast[nats]'`, or leave --store / REELCAST_STORE empty for the "
    "embedded SQLite store.",
    _S.FAILED_PRECONDITION,
    500,
    ["Run `pip install 'reelcast[nats]'`", "Unset --store / REELCAST_STORE to use the embedded store"],
)
LISTEN_FAILED = define(
    "E031-LISTEN_FAILED",
    "Cannot listen on the address",
    "The address to listen on is taken by another process, or is not an address of this machine.",
    "Stop the process that holds the port, or choose another with --grpc-listen / --http-listen "
    "(port 0 picks a free one).",
    _S.FAILED_PRECONDITION,
    500,
    ["Find the process with `ss -ltnp`", "Listen on another port"],
)
JOB_NOT_RETRYABLE = define(
    "E060-JOB_NOT_RETRYABLE",
    "Job cannot be retried",
    "Only a Failed or Cancelled job can be retried; this one is queued, running, awaiting review or "
    "succeeded.",
    "Read the job's status first: wait for it to end, or cancel it, then retry. A succeeded job is not run "
    "again: create a new job instead.",
    _S.FAILED_PRECONDITION,
    409,
)

# E061-E069: per-user quotas on resources (server/rpc/quotas.py); the counts are E021-E023.
RENDER_TIME_QUOTA_EXCEEDED = define(
    "E061-RENDER_TIME_QUOTA_EXCEEDED",
    "Too much render time queued",
    "Your unfinished jobs (queued, running, awaiting review) with this one would add up to more video "
    "seconds than allowed (REELCAST_MAX_QUEUED_RENDER_SECONDS_PER_USER).",
    "Wait for some of your jobs to finish, cancel or delete one you no longer need, or ask for a shorter "
    "video (plan.target_duration_seconds, or a shorter script); then submit again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Cancel a job you no longer need", "Ask for a shorter video", "Retry after the indicated delay"],
)
STORAGE_QUOTA_EXCEEDED = define(
    "E062-STORAGE_QUOTA_EXCEEDED",
    "Storage quota exceeded",
    "Your finished videos and uploaded media together take as many bytes as allowed "
    "(REELCAST_MAX_STORED_BYTES_PER_USER), or this upload would pass it.",
    "Delete jobs whose videos you no longer need (`reelcast jobs delete ID`, DELETE /api/jobs/{id}) or media "
    "(`reelcast media delete ID`), then submit again.",
    _S.RESOURCE_EXHAUSTED,
    429,
    ["Delete a finished job you no longer need", "Delete media you no longer use"],
)
