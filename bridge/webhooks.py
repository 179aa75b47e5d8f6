"""The webhook endpoints: ``GET`` and ``POST /api/webhooks``, ``DELETE /api/webhooks/{webhookId}``,
``POST /api/webhooks/{webhookId}/rotate-secret`` and ``POST /api/webhooks/{webhookId}/replay``, each a thin
call of one JobService webhook RPC (server/rpc/webhooks.py), which checks the URL, its address and the
owner. Their errors (E090 a bad URL, E091 a refused address, E096 another user's endpoint, E095 a backend
without webhooks) reach the caller through the app's usual gRPC error mapping (bridge/problems.py).

An endpoint's REST form names its filter with one word (``filter``: ``everything``, ``terminal`` or
``statuses``, the last with ``statuses``), where the proto has ``terminal_only`` and a status list; both ways
round are here, so the page and a script read back what they sent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec
from google.protobuf import timestamp_pb2
from starlette.requests import Request
from starlette.responses import Response

from reelcast.bridge.bodies import page_size_param
from reelcast.bridge.problems import ApiError
from reelcast.bridge.rest import _encodable, decode_json_body, struct_response
from reelcast.bridge.state import bridge_state, grpc_metadata
from reelcast.jobs import errors
from reelcast.jobs.resources import JOB_STATUS_FILTERS, JOB_STATUS_WORDS, JobWord, _Answer
from reelcast.jobs.v1 import job_service_pb2
from reelcast.jobs.violations import FieldViolation

FilterWord = Literal["everything", "terminal", "statuses"]
# The server's own id shape: anything else cannot be an endpoint, and is 404 without a call.
_WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{32}$")
assert set(get_args(JobWord)) == set(JOB_STATUS_FILTERS)


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class CreateWebhookBody(_Body, kw_only=True):
    url: Annotated[
        str,
        msgspec.Meta(
            max_length=2048,
            description="An absolute http:// or https:// URL (E090); its host must resolve to an address "
            "the server may send to (E091).",
            examples=["https://example.com/hooks/reelcast"],
        ),
    ]
    filter: Annotated[
        FilterWord,
        msgspec.Meta(
            description="everything: every event of the caller's jobs (step events too); terminal: only "
            "each job's last event (job-completed or job-failed); statuses: only the job-level events "
            "whose status is one of `statuses`."
        ),
    ] = "everything"
    statuses: Annotated[
        list[JobWord],
        msgspec.Meta(max_length=16, description="With filter statuses (and only then): at least one."),
    ] = []
    labels: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Only jobs carrying all these labels; none: all the caller's jobs. At most 64.",
            examples=[{"project": "otters"}],
        ),
    ] = {}


class ReplayWebhookBody(_Body, kw_only=True):
    job_id: Annotated[
        str, msgspec.Meta(max_length=128, description="Redeliver this job's events (with fromSequence).")
    ] = ""
    from_sequence: Annotated[
        int, msgspec.Meta(ge=0, description="With jobId: the first sequence; 0 or 1 is the job's first.")
    ] = 0
    since: (
        Annotated[
            datetime,
            msgspec.Meta(
                tz=True,
                description="Instead of jobId: every matching event of the caller's jobs written at or "
                "after this RFC 3339 time (with its offset).",
            ),
        ]
        | None
    ) = None


class Webhook(_Answer, kw_only=True):
    webhook_id: Annotated[str, msgspec.Meta(description="wh_ and 32 hex digits.")]
    url: str
    filter: FilterWord
    statuses: Annotated[list[JobWord], msgspec.Meta(description="Empty unless filter is statuses.")]
    labels: dict[str, str]
    failing: Annotated[
        bool,
        msgspec.Meta(
            description="A delivery used up its attempts; cleared by the next delivery that succeeds."
        ),
    ]
    last_error: Annotated[
        str, msgspec.Meta(description="The catalogue code and message of the last failed delivery, or ''.")
    ]


class CreatedWebhook(Webhook, kw_only=True):
    secret: Annotated[
        str,
        msgspec.Meta(description="The signing secret (whsec_ and base64): shown only here and on rotation."),
    ]


class WebhookList(_Answer):
    webhooks: list[Webhook]
    next_page_token: Annotated[str, msgspec.Meta(description="Empty on the last page.")]


class WebhookSecret(_Answer):
    webhook_id: str
    secret: Annotated[
        str, msgspec.Meta(description="The new secret; the previous one still signs during the overlap.")
    ]


class WebhookReplay(_Answer):
    webhook_id: str
    replayed: Annotated[int, msgspec.Meta(description="How many events are being redelivered.")]


WEBHOOK_BODY_TYPES: tuple[type[msgspec.Struct], ...] = (CreateWebhookBody, ReplayWebhookBody)
WEBHOOK_ANSWER_TYPES: tuple[type[msgspec.Struct], ...] = (
    Webhook,
    CreatedWebhook,
    WebhookList,
    WebhookSecret,
    WebhookReplay,
)


def _status_words(webhook: job_service_pb2.Webhook) -> list[JobWord]:
    # Failed stands for Failed and Cancelled both: one word each, in the catalogue's order.
    present = {JOB_STATUS_WORDS[status] for status in webhook.statuses if status in JOB_STATUS_WORDS}
    return [word for word in JOB_STATUS_FILTERS if word in present]  # type: ignore[misc]


def webhook_fields(webhook: job_service_pb2.Webhook) -> dict[str, object]:
    statuses = _status_words(webhook)
    word: FilterWord = "terminal" if webhook.terminal_only else "statuses" if statuses else "everything"
    return {
        "webhook_id": webhook.id,
        "url": webhook.url,
        "filter": word,
        "statuses": statuses,
        "labels": dict(sorted(webhook.labels.items())),  # a proto map has no order: answers keep one
        "failing": webhook.failing,
        "last_error": webhook.last_error,
    }


def webhook_resource(webhook: job_service_pb2.Webhook) -> Webhook:
    return Webhook(**webhook_fields(webhook))  # type: ignore[arg-type]


def webhook_message(body: CreateWebhookBody) -> job_service_pb2.Webhook:
    """The proto endpoint of a create body; a filter word that disagrees with ``statuses`` is a 400."""
    if body.filter == "statuses" and not body.statuses:
        raise ApiError(
            errors.INVALID_REQUEST,
            "statuses: filter statuses needs at least one status.",
            [FieldViolation("statuses", "must name at least one status with filter statuses")],
        )
    if body.filter != "statuses" and body.statuses:
        raise ApiError(
            errors.INVALID_REQUEST,
            f"statuses: only with filter statuses, not {body.filter}.",
            [FieldViolation("statuses", "must be empty unless filter is statuses")],
        )
    statuses = sorted({status for word in body.statuses for status in JOB_STATUS_FILTERS[word]})
    message = job_service_pb2.Webhook(
        url=body.url, terminal_only=body.filter == "terminal", statuses=statuses, labels=body.labels
    )
    _encodable(message)
    return message


def checked_webhook_id(request: Request) -> str:
    webhook_id = str(request.path_params.get("webhookId", ""))
    if not _WEBHOOK_ID.match(webhook_id):
        raise ApiError(errors.WEBHOOK_NOT_FOUND, "No webhook endpoint with this id.")
    return webhook_id


async def list_webhooks(request: Request) -> Response:
    """``GET /api/webhooks``: JobService.ListWebhooks, paged as ``GET /api/jobs`` is."""
    params = request.query_params
    reply = await bridge_state(request).jobs.ListWebhooks(
        job_service_pb2.ListWebhooksRequest(
            page_size=page_size_param(params), page_token=params.get("pageToken", "")
        ),
        metadata=grpc_metadata(),
    )
    return struct_response(WebhookList([webhook_resource(w) for w in reply.webhooks], reply.next_page_token))


async def create_webhook(request: Request) -> Response:
    """``POST /api/webhooks``: JobService.CreateWebhook; the answer is the only one with the secret."""
    body = await decode_json_body(request, CreateWebhookBody, invalid_error=errors.INVALID_REQUEST)
    reply = await bridge_state(request).jobs.CreateWebhook(
        job_service_pb2.CreateWebhookRequest(webhook=webhook_message(body)), metadata=grpc_metadata()
    )
    created = CreatedWebhook(**webhook_fields(reply.webhook), secret=reply.secret)  # type: ignore[arg-type]
    # No Location: there is no GET of one endpoint (ListWebhooks is the gRPC surface's only read).
    return struct_response(created, 201)


async def delete_webhook(request: Request) -> Response:
    """``DELETE /api/webhooks/{webhookId}``: JobService.DeleteWebhook."""
    webhook_id = checked_webhook_id(request)
    await bridge_state(request).jobs.DeleteWebhook(
        job_service_pb2.DeleteWebhookRequest(webhook_id=webhook_id), metadata=grpc_metadata()
    )
    return Response(status_code=204)


async def rotate_webhook_secret(request: Request) -> Response:
    """``POST /api/webhooks/{webhookId}/rotate-secret``: JobService.RotateWebhookSecret."""
    webhook_id = checked_webhook_id(request)
    reply = await bridge_state(request).jobs.RotateWebhookSecret(
        job_service_pb2.RotateWebhookSecretRequest(webhook_id=webhook_id), metadata=grpc_metadata()
    )
    return struct_response(WebhookSecret(webhook_id, reply.secret))


async def replay_webhook(request: Request) -> Response:
    """``POST /api/webhooks/{webhookId}/replay``: JobService.ReplayWebhook, with ``{jobId, fromSequence}``
    or ``{since}``. Which combinations are allowed is the server's to say (E002 for both or neither)."""
    webhook_id = checked_webhook_id(request)
    body = await decode_json_body(request, ReplayWebhookBody, invalid_error=errors.INVALID_REQUEST)
    replay = job_service_pb2.ReplayWebhookRequest(
        webhook_id=webhook_id, job_id=body.job_id, from_sequence=body.from_sequence
    )
    if body.since is not None:
        since = timestamp_pb2.Timestamp()
        since.FromDatetime(body.since)
        replay.since.CopyFrom(since)
    _encodable(replay)
    reply = await bridge_state(request).jobs.ReplayWebhook(replay, metadata=grpc_metadata())
    return struct_response(WebhookReplay(webhook_id, reply.replayed), 202)
