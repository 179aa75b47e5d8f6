"""The asyncio client, on ``grpc.aio``: the one implementation of every method of both clients (the sync
:class:`~reelcast.client.Client` runs these coroutines on an event loop thread of its own)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import grpc
from grpc import aio

from reelcast.client.connection import ClientBase
from reelcast.client.errors import CallCancelledError, ReelcastError, UnavailableError, from_rpc_error
from reelcast.client.retry import RetryPolicy
from reelcast.client.spec import (
    SpecFields,
    artifact_request,
    create_request,
    list_request,
    scene_messages,
    watch_jobs_request,
)
from reelcast.client.watch import FeedWatchState, WatchState
from reelcast.jobs.metadata import new_correlation_id
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub


class AsyncClient(ClientBase):
    """A client of the reelcast ``JobService`` for asyncio code; the constructor's options are
    :class:`~reelcast.client.connection.ClientBase`'s.

    Use it as ``async with AsyncClient(...) as client:``, or call :meth:`close`. The channel opens on first
    use, on the running event loop.
    """

    _channel: aio.Channel | None = None
    _stub: JobServiceAsyncStub | None = None

    def _service(self) -> JobServiceAsyncStub:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._stub is None:
            credentials = self.connection.credentials()
            options = self.connection.options()
            if credentials is None:
                self._channel = aio.insecure_channel(self.connection.target, options=options)
            else:
                self._channel = aio.secure_channel(self.connection.target, credentials, options=options)
            self._stub = job_service_pb2_grpc.JobServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled, and watches end with CallCancelledError."""
        self._closed = True
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        self._service()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(
        self, method: Any, request: Any, correlation_id: str | None, timeout: float | None
    ) -> Any:
        sent = self.connection.call_correlation_id(correlation_id)
        try:
            return await method(
                request,
                metadata=self.connection.metadata(sent),
                timeout=self.connection.call_timeout(timeout),
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, sent) from error
        except asyncio.CancelledError:
            self._raise_if_closed(sent)
            raise

    def _raise_if_closed(self, correlation_id: str) -> None:
        """grpc.aio ends the calls of a closed channel with ``asyncio.CancelledError``; when the task itself
        was not cancelled, that is the client being closed, and it is reported as such."""
        task = asyncio.current_task()
        if self._closed and task is not None and not task.cancelling():
            raise CallCancelledError(
                grpc.StatusCode.CANCELLED, "the client was closed", correlation_id=correlation_id
            ) from None

    async def create_job(
        self,
        spec: job_pb2.JobSpec | Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
        **fields: Unpack[SpecFields],
    ) -> job_pb2.Job:
        """Creates a job from ``spec`` (a ``JobSpec`` or its JSON mapping) or from spec keywords
        (``topic=...``, see :class:`SpecFields`), and returns it as stored.

        ``request_id`` is the idempotency key: a repeat with the same key returns the job created the first
        time. When omitted, one is generated for this call, so that the client's own retries never create a
        second job."""
        request = create_request(spec, request_id or new_correlation_id(), fields)
        response: job_service_pb2.CreateJobResponse = await self._unary(
            self._service().CreateJob, request, correlation_id, timeout
        )
        return response.job

    async def get_job(
        self, job_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> job_pb2.Job:
        """The job ``job_id``; :class:`~reelcast.client.NotFoundError` if it does not exist (or is not
        yours)."""
        response: job_service_pb2.GetJobResponse = await self._unary(
            self._service().GetJob, job_service_pb2.GetJobRequest(job_id=job_id), correlation_id, timeout
        )
        return response.job

    async def list_jobs_page(
        self,
        *,
        statuses: Iterable[job_pb2.JobStatus.ValueType | str] = (),
        labels: Mapping[str, str] | str = "",
        page_size: int = 0,
        page_token: str = "",
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_service_pb2.ListJobsResponse:
        """One page of jobs, newest first, and the token of the next page (empty on the last). ``labels``:
        only jobs carrying all of them (a mapping, or a selector such as ``"team=video,env=prod"``)."""
        request = list_request(page_size, page_token, statuses, labels)
        response: job_service_pb2.ListJobsResponse = await self._unary(
            self._service().ListJobs, request, correlation_id, timeout
        )
        return response

    async def list_jobs(
        self,
        *,
        statuses: Iterable[job_pb2.JobStatus.ValueType | str] = (),
        labels: Mapping[str, str] | str = "",
        page_size: int = 0,
        page_token: str = "",
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> AsyncGenerator[job_pb2.Job, None]:
        """Every job (of the given ``statuses``, carrying all the ``labels``), newest first, fetching
        ``page_size`` at a time (0: the server's default) and following the page tokens to the end."""
        wanted = list(statuses)
        token = page_token
        while True:
            page = await self.list_jobs_page(
                statuses=wanted,
                labels=labels,
                page_size=page_size,
                page_token=token,
                correlation_id=correlation_id,
                timeout=timeout,
            )
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def cancel_job(
        self, job_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> job_pb2.Job:
        """Requests cancellation and returns the job; a running job may still be RUNNING until its stage has
        stopped (watch for the terminal event). :class:`~reelcast.client.FailedPreconditionError` (E004) if
        it already finished."""
        response: job_service_pb2.CancelJobResponse = await self._unary(
            self._service().CancelJob,
            job_service_pb2.CancelJobRequest(job_id=job_id),
            correlation_id,
            timeout,
        )
        return response.job

    async def retry_job(
        self, job_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> job_pb2.Job:
        """Queues a Failed or Cancelled job again (a new attempt, from its checkpoints) and returns it;
        :class:`~reelcast.client.FailedPreconditionError` (E060) for a job in any other status."""
        response: job_service_pb2.RetryJobResponse = await self._unary(
            self._service().RetryJob,
            job_service_pb2.RetryJobRequest(job_id=job_id),
            correlation_id,
            timeout,
        )
        return response.job

    async def delete_job(
        self, job_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> None:
        """Deletes the job with everything it left (a running job is cancelled first)."""
        await self._unary(
            self._service().DeleteJob,
            job_service_pb2.DeleteJobRequest(job_id=job_id),
            correlation_id,
            timeout,
        )

    async def update_job_script(
        self,
        job_id: str,
        scenes: Iterable[job_pb2.Scene | Mapping[str, Any]],
        expected_revision: int,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_pb2.Job:
        """Replaces the scenes of a job that waits for review (``JOB_STATUS_AWAITING_REVIEW``) and returns
        the job with its next ``review.revision``. ``expected_revision`` is the ``review.revision`` the edit
        was made from: :class:`~reelcast.client.AbortedError` (E016) when someone edited it meanwhile,
        :class:`~reelcast.client.FailedPreconditionError` (E015) when the job does not wait for review,
        :class:`~reelcast.client.InvalidArgumentError` (E001) for invalid scenes. A scene is a ``Scene`` or
        its JSON mapping (``{"title": ..., "narration": ...}``)."""
        request = job_service_pb2.UpdateJobScriptRequest(
            job_id=job_id, scenes=scene_messages(scenes), expected_revision=expected_revision
        )
        response: job_service_pb2.UpdateJobScriptResponse = await self._unary(
            self._service().UpdateJobScript, request, correlation_id, timeout
        )
        return response.job

    async def approve_job(
        self,
        job_id: str,
        scenes: Iterable[job_pb2.Scene | Mapping[str, Any]] = (),
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_pb2.Job:
        """Approves the script of a job that waits for review (with ``scenes`` as its final script when
        given) and returns the job, Queued again: it resumes after its script and renders the approved
        scenes. :class:`~reelcast.client.FailedPreconditionError` (E015) when the job does not wait."""
        request = job_service_pb2.ApproveJobRequest(job_id=job_id, scenes=scene_messages(scenes))
        response: job_service_pb2.ApproveJobResponse = await self._unary(
            self._service().ApproveJob, request, correlation_id, timeout
        )
        return response.job

    async def list_stages(
        self, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> list[job_pb2.Stage]:
        """The stages installed on the server, in pipeline order."""
        response: job_service_pb2.ListStagesResponse = await self._unary(
            self._service().ListStages, job_service_pb2.ListStagesRequest(), correlation_id, timeout
        )
        return list(response.stages)

    async def watch_job(
        self,
        job_id: str,
        after_sequence: int = 0,
        *,
        retry: RetryPolicy | None = None,
        correlation_id: str | None = None,
    ) -> AsyncGenerator[job_pb2.JobProgress, None]:
        """The job's events after ``after_sequence``, in order, each exactly once, ending with the terminal
        event. A broken stream (server restart, dropped connection) is resumed from the last event delivered,
        with backoff (``retry``, default: the client's); a final error (NOT_FOUND, UNAUTHENTICATED...) or a
        spent retry budget raises :class:`~reelcast.client.ReelcastError`. Every reconnection sends the same
        correlation id."""
        state = WatchState(job_id, after_sequence, retry or self.connection.retry)
        sent = self.connection.call_correlation_id(correlation_id)
        metadata = self.connection.metadata(sent)
        while True:
            call = self._service().WatchJob(state.request(), metadata=metadata)
            error: ReelcastError
            try:
                async for event in call:
                    if state.accept(event):
                        yield event
                        if state.finished:
                            return
                error = state.ended_early(sent)
            except grpc.RpcError as failure:
                error = from_rpc_error(failure, sent)
            except asyncio.CancelledError:
                self._raise_if_closed(sent)
                raise
            finally:
                call.cancel()
            if self._closed:  # the call was cancelled by close(), not by the server
                raise error
            await asyncio.sleep(state.delay_after(error))

    async def watch_jobs(
        self,
        cursor: str = "",
        *,
        owner: str = "",
        statuses: Iterable[job_pb2.JobStatus.ValueType | str] = (),
        labels: Mapping[str, str] | str = "",
        retry: RetryPolicy | None = None,
        correlation_id: str | None = None,
    ) -> AsyncGenerator[job_service_pb2.WatchJobsResponse, None]:
        """Every event of the caller's jobs (an admin's: ``owner``'s) after ``cursor`` (empty: from now),
        including jobs created later, each as a response with its ``event`` and the ``cursor`` to resume after
        it; ``statuses`` and ``labels`` filter them as in ``list_jobs``. The first response has no event, only
        the cursor where the stream starts (it is open: what is stored from then on comes). The stream never
        ends by itself. A broken stream is resumed from the last cursor received, like ``watch_job``."""
        request = watch_jobs_request(cursor, owner, statuses, labels)
        state = FeedWatchState(request, retry or self.connection.retry)
        sent = self.connection.call_correlation_id(correlation_id)
        metadata = self.connection.metadata(sent)
        while True:
            call = self._service().WatchJobs(state.request(), metadata=metadata)
            error: ReelcastError
            try:
                async for response in call:
                    if state.accept(response):
                        yield response
                error = UnavailableError(
                    grpc.StatusCode.UNAVAILABLE, "the WatchJobs stream ended", correlation_id=sent
                )
            except grpc.RpcError as failure:
                error = from_rpc_error(failure, sent)
            except asyncio.CancelledError:
                self._raise_if_closed(sent)
                raise
            finally:
                call.cancel()
            if self._closed:
                raise error
            await asyncio.sleep(state.delay_after(error))

    async def read_artifact(
        self,
        job_id: str,
        kind: job_service_pb2.ArtifactKind.ValueType | str = "video",
        *,
        offset: int = 0,
        length: int = 0,
        correlation_id: str | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of a finished job's artifact ("video", "thumbnail", "subtitles" or "webvtt"), in chunks
        of at most 64 KiB, from ``offset`` for ``length`` bytes (0: to the end)."""
        sent = self.connection.call_correlation_id(correlation_id)
        call = self._service().ReadJobArtifact(
            artifact_request(job_id, kind, offset, length), metadata=self.connection.metadata(sent)
        )
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.RpcError as error:
            raise from_rpc_error(error, sent) from error
        finally:
            call.cancel()

    # -- the caller's own media (docs/api.md, Media) -----------------------------------------------------

    async def upload_media(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        file_name: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_service_pb2.Media:
        """Uploads a picture, clip or track (a path, or the bytes themselves) and returns it as stored: use
        its ``id`` in a spec. The server sniffs the type from the content; ``file_name`` (by default the
        path's name) is for display only. The file is read and sent in chunks, never whole."""
        if isinstance(source, bytes):
            name = file_name or "upload"
            chunks: Iterable[bytes] = (
                source[i : i + UPLOAD_CHUNK_BYTES] for i in range(0, len(source), UPLOAD_CHUNK_BYTES)
            )
        else:
            path = Path(source)
            name = file_name or path.name
            chunks = _file_chunks(path)

        async def messages() -> AsyncIterator[job_service_pb2.UploadMediaRequest]:
            yield job_service_pb2.UploadMediaRequest(
                metadata=job_service_pb2.UploadMediaMetadata(file_name=name)
            )
            for chunk in chunks:
                yield job_service_pb2.UploadMediaRequest(chunk=chunk)

        response: job_service_pb2.UploadMediaResponse = await self._unary(
            self._service().UploadMedia,
            messages(),
            correlation_id,
            timeout,
        )
        return response.media

    async def get_media(
        self, media_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> job_service_pb2.Media:
        """The media ``media_id``; :class:`~reelcast.client.NotFoundError` if it does not exist (or is not
        yours)."""
        response: job_service_pb2.GetMediaResponse = await self._unary(
            self._service().GetMedia,
            job_service_pb2.GetMediaRequest(media_id=media_id),
            correlation_id,
            timeout,
        )
        return response.media

    async def list_media_page(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_service_pb2.ListMediaResponse:
        """One page of your media, newest first (an admin's key: everyone's)."""
        response: job_service_pb2.ListMediaResponse = await self._unary(
            self._service().ListMedia,
            job_service_pb2.ListMediaRequest(page_size=page_size, page_token=page_token),
            correlation_id,
            timeout,
        )
        return response

    async def delete_media(
        self, media_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> None:
        """Deletes the media ``media_id``; a queued job that uses it fails with E451."""
        await self._unary(
            self._service().DeleteMedia,
            job_service_pb2.DeleteMediaRequest(media_id=media_id),
            correlation_id,
            timeout,
        )

    async def create_webhook(
        self,
        webhook: job_service_pb2.Webhook,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_service_pb2.CreateWebhookResponse:
        """Registers a webhook endpoint; the answer carries its signing secret, shown only then
        (docs/webhooks.md)."""
        response: job_service_pb2.CreateWebhookResponse = await self._unary(
            self._service().CreateWebhook,
            job_service_pb2.CreateWebhookRequest(webhook=webhook),
            correlation_id,
            timeout,
        )
        return response

    async def list_webhooks_page(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> job_service_pb2.ListWebhooksResponse:
        """One page of your webhook endpoints, by id, without their secrets."""
        response: job_service_pb2.ListWebhooksResponse = await self._unary(
            self._service().ListWebhooks,
            job_service_pb2.ListWebhooksRequest(page_size=page_size, page_token=page_token),
            correlation_id,
            timeout,
        )
        return response

    async def delete_webhook(
        self, webhook_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> None:
        """Removes a webhook endpoint: nothing more is delivered to it."""
        await self._unary(
            self._service().DeleteWebhook,
            job_service_pb2.DeleteWebhookRequest(webhook_id=webhook_id),
            correlation_id,
            timeout,
        )

    async def rotate_webhook_secret(
        self, webhook_id: str, *, correlation_id: str | None = None, timeout: float | None = None
    ) -> str:
        """A new signing secret; the previous one keeps signing beside it during the overlap period."""
        response: job_service_pb2.RotateWebhookSecretResponse = await self._unary(
            self._service().RotateWebhookSecret,
            job_service_pb2.RotateWebhookSecretRequest(webhook_id=webhook_id),
            correlation_id,
            timeout,
        )
        return response.secret

    async def replay_webhook(
        self,
        webhook_id: str,
        job_id: str,
        from_sequence: int = 1,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Redelivers ``job_id``'s events from ``from_sequence`` on to the endpoint; gives how many."""
        response: job_service_pb2.ReplayWebhookResponse = await self._unary(
            self._service().ReplayWebhook,
            job_service_pb2.ReplayWebhookRequest(
                webhook_id=webhook_id, job_id=job_id, from_sequence=from_sequence
            ),
            correlation_id,
            timeout,
        )
        return response.replayed

    async def replay_webhook_since(
        self,
        webhook_id: str,
        since: datetime,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Redelivers the endpoint's deliveries since ``since`` (an aware datetime): every event of the
        caller's jobs written since then that the endpoint selects, in order; gives how many."""
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime (with a time zone)")
        request = job_service_pb2.ReplayWebhookRequest(webhook_id=webhook_id)
        request.since.FromDatetime(since)
        response: job_service_pb2.ReplayWebhookResponse = await self._unary(
            self._service().ReplayWebhook, request, correlation_id, timeout
        )
        return response.replayed


# The bytes of one UploadMedia message (the server accepts messages of 1 MiB).
UPLOAD_CHUNK_BYTES = 256 * 1024


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            yield chunk
