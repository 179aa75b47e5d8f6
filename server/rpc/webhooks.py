"""The webhook RPCs of ``JobService`` (CreateWebhook, ListWebhooks, DeleteWebhook, RotateWebhookSecret,
ReplayWebhook): each checks its request and delegates to the process's ``WebhookService``. Owner-only: an
endpoint of another user answers NOT_FOUND like a missing one, so ids cannot be probed."""

from __future__ import annotations

import re
from typing import Any

from grpc import aio

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.resources import JOB_STATUS_FILTERS, JOB_STATUS_WORDS
from reelcast.jobs.v1 import job_service_pb2
from reelcast.jobs.violations import FieldViolation
from reelcast.server.rpc.abort import abort
from reelcast.server.security.callcontext import current_caller, may_see
from reelcast.server.storage.job_store import JobStore
from reelcast.server.storage.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from reelcast.server.webhooks.endpoints import EventFilter, WebhookEndpoint
from reelcast.server.webhooks.service import WebhookService

Context = aio.ServicerContext[Any, Any]
_WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{32}")
_MAX_LABELS = 64


def webhook_message(endpoint: WebhookEndpoint) -> job_service_pb2.Webhook:
    event_filter = endpoint.event_filter
    statuses = sorted({status for word in event_filter.statuses for status in JOB_STATUS_FILTERS[word]})
    return job_service_pb2.Webhook(
        id=endpoint.id,
        url=endpoint.url,
        terminal_only=event_filter.terminal,
        statuses=statuses,
        labels=dict(endpoint.labels),
        failing=endpoint.failing,
        last_error=endpoint.last_error,
    )


def event_filter_of(webhook: job_service_pb2.Webhook) -> EventFilter:
    words = frozenset(JOB_STATUS_WORDS[status] for status in webhook.statuses if status)
    return EventFilter(
        everything=not webhook.terminal_only and not words, terminal=webhook.terminal_only, statuses=words
    )


class WebhookRpcs:
    """Needs ``self.webhooks`` (None on a backend without webhooks) and ``self.store``."""

    webhooks: WebhookService | None
    store: JobStore

    async def _webhooks(self, context: Context) -> WebhookService:
        if self.webhooks is None:
            await abort(context, ReelcastError(errors.WEBHOOKS_NOT_AVAILABLE, "This store has no webhooks."))
        return self.webhooks

    async def _refuse(self, context: Context, field: str, description: str) -> None:
        error = ReelcastError(errors.INVALID_REQUEST, f"{field} {description}")
        await abort(context, error, [FieldViolation(field, description)])

    async def CreateWebhook(
        self, request: job_service_pb2.CreateWebhookRequest, context: Context
    ) -> job_service_pb2.CreateWebhookResponse:
        webhooks = await self._webhooks(context)
        webhook = request.webhook
        if len(webhook.labels) > _MAX_LABELS:
            await self._refuse(context, "webhook.labels", f"must have at most {_MAX_LABELS} entries")
        if len(webhook.statuses) > len(JOB_STATUS_WORDS) * 4:
            await self._refuse(context, "webhook.statuses", "has too many entries")
        if any(status not in JOB_STATUS_WORDS for status in webhook.statuses):
            await self._refuse(context, "webhook.statuses", "has an unknown status")
        try:
            endpoint = await webhooks.create(
                current_caller(), webhook.url, event_filter_of(webhook), webhook.labels
            )
        except ReelcastError as refused:
            await abort(context, refused)
        return job_service_pb2.CreateWebhookResponse(
            webhook=webhook_message(endpoint), secret=endpoint.secret
        )

    async def ListWebhooks(
        self, request: job_service_pb2.ListWebhooksRequest, context: Context
    ) -> job_service_pb2.ListWebhooksResponse:
        webhooks = await self._webhooks(context)
        if request.page_size < 0:
            await self._refuse(context, "page_size", "must not be negative")
        if request.page_token and not _WEBHOOK_ID.fullmatch(request.page_token):
            await abort(
                context, ReelcastError(errors.INVALID_REQUEST, "page_token is not one this server gave")
            )
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = [e for e in await webhooks.registry.endpoints(current_caller()) if e.id > request.page_token]
        page = after[:size]
        next_token = page[-1].id if len(after) > size else ""
        return job_service_pb2.ListWebhooksResponse(
            webhooks=[webhook_message(endpoint) for endpoint in page], next_page_token=next_token
        )

    async def DeleteWebhook(
        self, request: job_service_pb2.DeleteWebhookRequest, context: Context
    ) -> job_service_pb2.DeleteWebhookResponse:
        webhooks = await self._webhooks(context)
        try:
            await webhooks.delete(current_caller(), request.webhook_id)
        except ReelcastError as missing:
            await abort(context, missing)
        return job_service_pb2.DeleteWebhookResponse()

    async def RotateWebhookSecret(
        self, request: job_service_pb2.RotateWebhookSecretRequest, context: Context
    ) -> job_service_pb2.RotateWebhookSecretResponse:
        webhooks = await self._webhooks(context)
        try:
            secret = await webhooks.rotate(current_caller(), request.webhook_id)
        except ReelcastError as missing:
            await abort(context, missing)
        return job_service_pb2.RotateWebhookSecretResponse(secret=secret)

    async def ReplayWebhook(
        self, request: job_service_pb2.ReplayWebhookRequest, context: Context
    ) -> job_service_pb2.ReplayWebhookResponse:
        webhooks = await self._webhooks(context)
        since = request.since if request.HasField("since") else None
        if since is not None and request.job_id:
            await self._refuse(context, "since", "cannot be given with job_id (replay one or the other)")
        if since is None and not request.job_id:
            await self._refuse(context, "job_id", "or since is required")
        if since is not None and since.ToMicroseconds() < 0:
            await self._refuse(context, "since", "must not be before 1970")
        if since is not None:
            if request.from_sequence:
                await self._refuse(context, "from_sequence", "goes with job_id, not since")
            try:
                replayed = await webhooks.replay_since(
                    current_caller(), request.webhook_id, since.ToMicroseconds()
                )
            except ReelcastError as missing:
                await abort(context, missing)
            return job_service_pb2.ReplayWebhookResponse(replayed=replayed)
        job = await self.store.get_job(request.job_id)
        if job is None or not may_see(job.owner) or job.owner != current_caller():
            await abort(context, ReelcastError(errors.JOB_NOT_FOUND, "No job with this id."))
        try:
            replayed = await webhooks.replay(
                current_caller(), request.webhook_id, request.job_id, request.from_sequence
            )
        except ReelcastError as missing:
            await abort(context, missing)
        return job_service_pb2.ReplayWebhookResponse(replayed=replayed)
