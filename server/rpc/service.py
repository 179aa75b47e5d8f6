"""The ``JobService`` servicer: each RPC checks its input and delegates to the runner or the store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from grpc import aio

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.labels import LabelSelectorError, parse_label_selector
from reelcast.jobs.metadata import STREAM_TOKEN_HEADER, current_correlation_id
from reelcast.jobs.terminal import TERMINAL_STATUSES
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.jobs.validation import REQUEST_ID, validate_scenes, validate_spec, with_defaults
from reelcast.jobs.violations import FieldViolation
from reelcast.server.config import Settings
from reelcast.server.execution.runner import JobRunner
from reelcast.server.media.references import (
    MediaReference,
    MediaReferenceError,
    check_references,
    scene_references,
    spec_references,
)
from reelcast.server.media.store import MediaStore
from reelcast.server.rpc.abort import abort
from reelcast.server.rpc.media import CONCURRENT_INTAKES, MediaRpcs
from reelcast.server.rpc.quotas import QuotaRefusalError, ResourceQuotas
from reelcast.server.rpc.themes import theme_messages, unknown_theme
from reelcast.server.rpc.voices import installed_voices
from reelcast.server.rpc.watch import follow_job_events
from reelcast.server.rpc.watch_jobs import FeedFilter, InvalidCursorError, decode_cursor, follow_feed
from reelcast.server.rpc.webhooks import WebhookRpcs
from reelcast.server.security.auth import StreamTokens, principal_var
from reelcast.server.security.callcontext import current_caller, current_is_admin, may_see
from reelcast.server.security.limits import StreamSlots, TokenBuckets, UserLocks
from reelcast.server.storage.job_store import JobStore, PageCursor
from reelcast.server.storage.notifier import EventNotifier
from reelcast.server.storage.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidPageTokenError,
    decode_page_token,
    encode_page_token,
    filter_fingerprint,
)
from reelcast.server.webhooks.service import WebhookService

Context = aio.ServicerContext[Any, Any]
# ListJobsRequest.statuses: repeats are counted once, but a list longer than this is refused before it is
# read (a 1 MiB request holds a million entries). Generous, so that a REST query naming a status twice passes.
MAX_STATUS_FILTERS = 64
# What a refused stream is told to wait before it tries again (as the bridge's Retry-After for SSE).
STREAM_RETRY_SECONDS = 5.0
# The ids the runner gives (32 hex digits) and the bridge accepts in a path.
JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_ARTIFACT_FIELDS = {
    job_service_pb2.ARTIFACT_KIND_VIDEO: "video_path",
    job_service_pb2.ARTIFACT_KIND_THUMBNAIL: "thumbnail_path",
    job_service_pb2.ARTIFACT_KIND_SUBTITLES: "subtitle_path",
    job_service_pb2.ARTIFACT_KIND_WEBVTT: "webvtt_path",
}


def _invalid(field: str, description: str) -> tuple[ReelcastError, list[FieldViolation]]:
    return ReelcastError(errors.INVALID_REQUEST, f"{field} {description}"), [
        FieldViolation(field, description)
    ]


def _metadata_value(context: Context, key: str) -> str:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("utf-8", errors="replace")
    return ""


async def _status_filter(requested: Sequence[int], context: Context) -> list[int]:
    """The statuses a listing or a stream is filtered by, sorted, each once (empty: any)."""
    if len(requested) > MAX_STATUS_FILTERS:
        # Checked before anything else reads the list: it may hold up to a 1 MiB message of entries.
        error, violations = _invalid("statuses", f"must list at most {MAX_STATUS_FILTERS} statuses")
        await abort(context, error, violations)
    unknown = [s for s in requested if s not in job_pb2.JobStatus.values()]
    if unknown:
        error, violations = _invalid("statuses", f"contains unknown status {unknown[0]}")
        await abort(context, error, violations)
    return sorted({s for s in requested if s != job_pb2.JOB_STATUS_UNSPECIFIED})


async def _label_filter(selector: str, context: Context) -> dict[str, str]:
    try:
        return parse_label_selector(selector)
    except LabelSelectorError as malformed:
        error, violations = _invalid("label_selector", str(malformed))
        await abort(context, error, violations)


class JobService(MediaRpcs, WebhookRpcs, job_service_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        runner: JobRunner,
        store: JobStore,
        notifier: EventNotifier,
        stream_tokens: StreamTokens | None = None,
        media: MediaStore | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self.runner = runner
        self.webhooks = webhooks
        self.media = media if media is not None else runner.media
        self.media_settings = runner.settings
        self._intakes = asyncio.Semaphore(CONCURRENT_INTAKES)
        self.store = store
        self.notifier = notifier
        self.stream_tokens = stream_tokens
        settings: Settings = runner.settings
        self.max_active_jobs = settings.max_active_jobs_per_user
        self.creation_buckets = TokenBuckets(settings.job_create_rate_per_minute, settings.job_create_burst)
        self.creation_locks = UserLocks()
        self.watch_slots = StreamSlots(settings.max_grpc_streams_per_user)
        self.quotas = ResourceQuotas(settings, store, self.media)
        self.espeak_data_path = settings.espeak_data_path

    async def _owned_job(self, job_id: str, context: Context) -> job_pb2.Job:
        """The job if the caller may see it. Another owner's job is NOT_FOUND, so ids cannot be probed; so is
        an id that no job can have (too long, or with other characters), without asking the store."""
        if not job_id:
            error, violations = _invalid("job_id", "is required")
            await abort(context, error, violations)
        job = await self.store.get_job(job_id) if JOB_ID.match(job_id) else None
        if job is None or not may_see(job.owner):
            # The id is not echoed: the answer for a foreign job must be the same bytes as for a missing one.
            await abort(context, ReelcastError(errors.JOB_NOT_FOUND, "No job with this id."))
        return job

    async def CreateJob(
        self, request: job_service_pb2.CreateJobRequest, context: Context
    ) -> job_service_pb2.CreateJobResponse:
        violations = validate_spec(request.spec)
        if request.request_id and not REQUEST_ID.match(request.request_id):
            violations.append(FieldViolation("request_id", "must be 1 to 64 characters of [A-Za-z0-9._-]"))
        if violations:
            summary = "; ".join(f"{v.field} {v.description}" for v in violations)
            await abort(context, ReelcastError(errors.INVALID_SPEC, summary), violations)
        theme_error = unknown_theme(request.spec.plan.style, self.runner.pipeline())
        if theme_error is not None:
            await abort(context, theme_error, [FieldViolation("spec.plan.style", "names no installed theme")])

        await self._check_media(spec_references(request.spec), context)
        # Authentication off: no users, so no counts per user (E021, E022); the resource quotas hold for
        # the anonymous owner all the same, as the media quota does.
        principal = principal_var.get()
        if principal is not None:
            wait = self.creation_buckets.take(principal.user)
            if wait > 0:
                await abort(
                    context,
                    ReelcastError(errors.RATE_LIMITED, f"Job creation is limited; retry in {wait:.0f} s."),
                    retry_after_seconds=wait,
                )
        owner = current_caller()
        async with self.creation_locks.of(owner):
            if principal is not None:
                await self._check_active_jobs(owner, context)
            await self._check_quotas(owner, with_defaults(request.spec), context)
            job = await self._submit(request, context)
        return job_service_pb2.CreateJobResponse(job=job)

    async def _check_active_jobs(self, owner: str, context: Context) -> None:
        active = await self.store.list_jobs(
            owner,
            [job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STATUS_AWAITING_REVIEW],
            self.max_active_jobs,
            None,
        )
        if len(active) >= self.max_active_jobs:
            await abort(
                context,
                ReelcastError(
                    errors.TOO_MANY_ACTIVE_JOBS,
                    f"You have {len(active)} unfinished jobs; the limit is {self.max_active_jobs}.",
                ),
                retry_after_seconds=10.0,
            )

    async def _check_quotas(self, owner: str, spec: job_pb2.JobSpec, context: Context) -> None:
        """E061/E062 before anything is stored (rpc/quotas.py); the caller holds the owner's lock."""
        try:
            await self.quotas.check_new_work(owner, spec)
        except QuotaRefusalError as refused:
            await abort(context, refused.error, retry_after_seconds=refused.retry_after_seconds)

    async def _check_media(self, references: Sequence[MediaReference], context: Context) -> None:
        """Every media id must be the caller's own, of the kind its field takes (media/references.py)."""
        try:
            await check_references(self.media, references, current_caller())
        except MediaReferenceError as refused:
            await abort(context, refused.error, refused.violations)

    async def _submit(self, request: job_service_pb2.CreateJobRequest, context: Context) -> job_pb2.Job:
        try:
            return await self.runner.submit(
                with_defaults(request.spec), current_caller(), current_correlation_id(), request.request_id
            )
        except ReelcastError as error:
            await abort(context, error)

    async def GetJob(
        self, request: job_service_pb2.GetJobRequest, context: Context
    ) -> job_service_pb2.GetJobResponse:
        job = await self._owned_job(request.job_id, context)
        principal = principal_var.get()
        if (
            _metadata_value(context, STREAM_TOKEN_HEADER) == "request"
            and self.stream_tokens is not None
            and principal is not None
            and principal.job_id is None  # a token cannot mint tokens
        ):
            token = self.stream_tokens.issue(principal.user, principal.key_id, job.id)
            context.set_trailing_metadata(((STREAM_TOKEN_HEADER, token),))
        return job_service_pb2.GetJobResponse(job=job)

    async def ListJobs(
        self, request: job_service_pb2.ListJobsRequest, context: Context
    ) -> job_service_pb2.ListJobsResponse:
        if request.page_size < 0:
            error, violations = _invalid("page_size", "must not be negative")
            await abort(context, error, violations)
        statuses = await _status_filter(request.statuses, context)
        labels = await _label_filter(request.label_selector, context)
        owner = None if current_is_admin() else current_caller()
        fingerprint = filter_fingerprint(current_caller(), statuses, labels)
        cursor = None
        if request.page_token:
            try:
                cursor = decode_page_token(request.page_token, fingerprint)
            except InvalidPageTokenError as invalid:
                error, violations = _invalid("page_token", str(invalid).removeprefix("page_token "))
                await abort(context, error, violations)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        jobs = await self.store.list_jobs(owner, statuses, size + 1, cursor, labels)
        response = job_service_pb2.ListJobsResponse(jobs=jobs[:size])
        if len(jobs) > size:
            last = jobs[size - 1]
            time_us = last.create_time.seconds * 1_000_000 + last.create_time.nanos // 1000
            response.next_page_token = encode_page_token(PageCursor(time_us, last.id), fingerprint)
        return response

    async def CancelJob(
        self, request: job_service_pb2.CancelJobRequest, context: Context
    ) -> job_service_pb2.CancelJobResponse:
        await self._owned_job(request.job_id, context)
        try:
            job = await self.runner.cancel(request.job_id)
        except ReelcastError as error:
            await abort(context, error)
        return job_service_pb2.CancelJobResponse(job=job)

    async def RetryJob(
        self, request: job_service_pb2.RetryJobRequest, context: Context
    ) -> job_service_pb2.RetryJobResponse:
        job = await self._owned_job(request.job_id, context)
        # A retried job is unfinished again, so it must fit the owner's quotas as a new one would; a job
        # that cannot be retried gets the runner's E060 instead.
        async with self.creation_locks.of(job.owner):
            if job.status in (job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED):
                await self._check_quotas(job.owner, job.spec, context)
            try:
                job = await self.runner.retry(request.job_id)
            except ReelcastError as error:
                await abort(context, error)
        return job_service_pb2.RetryJobResponse(job=job)

    async def DeleteJob(
        self, request: job_service_pb2.DeleteJobRequest, context: Context
    ) -> job_service_pb2.DeleteJobResponse:
        await self._owned_job(request.job_id, context)
        try:
            await self.runner.delete(request.job_id)
        except ReelcastError as error:
            await abort(context, error)
        return job_service_pb2.DeleteJobResponse()

    async def UpdateJobScript(
        self, request: job_service_pb2.UpdateJobScriptRequest, context: Context
    ) -> job_service_pb2.UpdateJobScriptResponse:
        job = await self._owned_job(request.job_id, context)
        await self._check_scenes(job, request.scenes, context, required=True)
        try:
            job = await self.runner.update_script(request.job_id, request.scenes, request.expected_revision)
        except ReelcastError as error:
            await abort(context, error)
        return job_service_pb2.UpdateJobScriptResponse(job=job)

    async def ApproveJob(
        self, request: job_service_pb2.ApproveJobRequest, context: Context
    ) -> job_service_pb2.ApproveJobResponse:
        job = await self._owned_job(request.job_id, context)
        await self._check_scenes(job, request.scenes, context, required=False)
        try:
            job = await self.runner.approve(request.job_id, request.scenes)
        except ReelcastError as error:
            await abort(context, error)
        return job_service_pb2.ApproveJobResponse(job=job)

    async def _check_scenes(
        self, job: job_pb2.Job, scenes: Sequence[job_pb2.Scene], context: Context, *, required: bool
    ) -> None:
        """Edited scenes get the checks of a user-supplied ``JobSpec.script``, reported on ``scenes``; their
        backgrounds must be media of the job's owner."""
        violations = validate_scenes(job.spec, scenes, required=required)
        if violations:
            summary = "; ".join(f"{v.field} {v.description}" for v in violations)
            await abort(context, ReelcastError(errors.INVALID_SPEC, summary), violations)
        try:
            await check_references(self.media, scene_references(scenes, "scenes"), job.owner)
        except MediaReferenceError as refused:
            await abort(context, refused.error, refused.violations)

    async def WatchJob(
        self, request: job_service_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[job_pb2.JobProgress]:
        if request.after_sequence < 0:
            error, violations = _invalid("after_sequence", "must not be negative")
            await abort(context, error, violations)
        job = await self._owned_job(request.job_id, context)
        if request.after_sequence > job.last_sequence:
            # On NATS the snapshot is written just after its event: ask the log before refusing the cursor.
            latest = await self.store.latest_job(request.job_id)
            job = latest if latest is not None else job
        if request.after_sequence > job.last_sequence:
            error, violations = _invalid(
                "after_sequence", f"is past the job's last event ({job.last_sequence})"
            )
            await abort(context, error, violations)
        if request.after_sequence == job.last_sequence and job.status in TERMINAL_STATUSES:
            return  # a finished job with nothing after the cursor: the stream is simply complete
        principal = principal_var.get()
        user = principal.user if principal is not None else None  # authentication off: no per-user limit
        if user is not None and not self.watch_slots.acquire(user):
            await abort(
                context,
                ReelcastError(
                    errors.TOO_MANY_STREAMS,
                    f"You have {self.watch_slots.open[user]} open WatchJob streams; "
                    f"the limit is {self.watch_slots.limit}.",
                ),
                retry_after_seconds=STREAM_RETRY_SECONDS,
            )
        events = follow_job_events(self.store, self.notifier, request.job_id, request.after_sequence)
        try:
            async for event in events:
                yield event
        finally:
            if user is not None:
                self.watch_slots.release(user)
            # A client cancel arrives here as CancelledError; closing the generator releases its wait.
            await events.aclose()

    async def WatchJobs(
        self, request: job_service_pb2.WatchJobsRequest, context: Context
    ) -> AsyncIterator[job_service_pb2.WatchJobsResponse]:
        statuses = await _status_filter(request.statuses, context)
        labels = await _label_filter(request.label_selector, context)
        # Like ListJobs: the caller's own jobs, an admin's every user's unless it names one.
        owner: str | None = request.owner or (None if current_is_admin() else current_caller())
        if owner is not None and owner != current_caller() and not current_is_admin():
            # Refused whether or not that user exists: the answer tells nothing about other users.
            await abort(context, ReelcastError(errors.OWNER_NOT_ALLOWED, "Only an admin may set owner."))
        after = None
        if request.cursor:
            try:
                after = decode_cursor(request.cursor)
            except InvalidCursorError as invalid:
                await abort(
                    context,
                    ReelcastError(errors.INVALID_WATCH_CURSOR, f"cursor {invalid}"),
                    [FieldViolation("cursor", str(invalid))],
                )
            if after is not None and after > await self.store.feed_head():
                await abort(
                    context,
                    ReelcastError(errors.INVALID_WATCH_CURSOR, "cursor is past the newest stored event"),
                    [FieldViolation("cursor", "is past the newest stored event")],
                )
        principal = principal_var.get()
        user = principal.user if principal is not None else None  # authentication off: no per-user limit
        if user is not None and not self.watch_slots.acquire(user):
            await abort(
                context,
                ReelcastError(
                    errors.TOO_MANY_STREAMS,
                    f"You have {self.watch_slots.open[user]} open event streams; "
                    f"the limit is {self.watch_slots.limit}.",
                ),
                retry_after_seconds=STREAM_RETRY_SECONDS,
            )
        wanted = FeedFilter(owner, labels, frozenset(statuses))
        responses = follow_feed(self.store, self.notifier, wanted, after)
        try:
            async for response in responses:
                yield response
        finally:
            if user is not None:
                self.watch_slots.release(user)
            await responses.aclose()

    async def ListStages(
        self, request: job_service_pb2.ListStagesRequest, context: Context
    ) -> job_service_pb2.ListStagesResponse:
        return job_service_pb2.ListStagesResponse(
            stages=[
                job_pb2.Stage(
                    name=installed.stage.name,
                    title=installed.stage.title,
                    weight=installed.stage.weight,
                    order=installed.stage.order,
                    plugin=installed.plugin,
                    plugin_version=installed.plugin_version,
                    description=installed.stage.description,
                )
                for installed in self.runner.pipeline()
            ]
        )

    async def ListThemes(
        self, request: job_service_pb2.ListThemesRequest, context: Context
    ) -> job_service_pb2.ListThemesResponse:
        return job_service_pb2.ListThemesResponse(themes=await theme_messages(self.runner.pipeline()))

    async def ListVoices(
        self, request: job_service_pb2.ListVoicesRequest, context: Context
    ) -> job_service_pb2.ListVoicesResponse:
        # Loading espeak-ng the first time takes a moment; the event loop keeps serving meanwhile.
        voices = await asyncio.to_thread(installed_voices, self.espeak_data_path)
        return job_service_pb2.ListVoicesResponse(voices=voices)

    async def GetCaller(
        self, request: job_service_pb2.GetCallerRequest, context: Context
    ) -> job_service_pb2.GetCallerResponse:
        # The interceptor has authenticated the call and set its identity (server/rpc/interceptors.py).
        caller = job_service_pb2.Caller(user=current_caller(), admin=current_is_admin())
        return job_service_pb2.GetCallerResponse(caller=caller)

    async def ReadJobArtifact(
        self, request: job_service_pb2.ReadJobArtifactRequest, context: Context
    ) -> AsyncIterator[job_service_pb2.ReadJobArtifactResponse]:
        field = _ARTIFACT_FIELDS.get(request.kind)
        if field is None and request.kind != job_service_pb2.ARTIFACT_KIND_PREVIEW:
            error, violations = _invalid("kind", "must be VIDEO, THUMBNAIL, SUBTITLES, WEBVTT or PREVIEW")
            await abort(context, error, violations)
        if request.offset < 0 or request.length < 0:
            error, violations = _invalid("offset", "and length must not be negative")
            await abort(context, error, violations)
        job = await self._owned_job(request.job_id, context)
        if field is None:  # the preview, while the job has one (and it is still the one asked for)
            wanted = request.preview_revision
            path_text = job.preview.path if wanted in (0, job.preview.revision) else ""
        else:
            path_text = getattr(job.output, field) if job.status == job_pb2.JOB_STATUS_SUCCEEDED else ""
        # From the backend's job files: the local work dir, or (NATS) the object store that any server reads.
        output = await self.runner.files.open_output(job.id, path_text) if path_text else None
        if output is None:
            await abort(context, ReelcastError(errors.ARTIFACT_NOT_FOUND))
        total = output.size
        if request.offset > total or (request.offset == total and total > 0):
            await abort(context, ReelcastError(errors.RANGE_NOT_SATISFIABLE))
        end = total if not request.length else min(total, request.offset + request.length)
        first: job_service_pb2.ReadJobArtifactResponse | None = job_service_pb2.ReadJobArtifactResponse(
            total_size=total, content_type=output.content_type
        )
        async for data in output.read_range(request.offset, end):
            if first is not None:
                first.data = data
                yield first
                first = None
            else:
                yield job_service_pb2.ReadJobArtifactResponse(data=data)
        if first is not None:  # nothing in range: the sizes still go out
            yield first
