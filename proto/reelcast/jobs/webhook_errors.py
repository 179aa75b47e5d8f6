"""The catalogue's webhook codes (E09x): an endpoint refused when it is registered, or a delivery that did
not reach it (docs/webhooks.md). Import them through ``reelcast.jobs.errors``."""

from __future__ import annotations

import grpc

from reelcast.jobs.error_codes import define

__all__ = [
    "WEBHOOKS_NOT_AVAILABLE",
    "WEBHOOK_ADDRESS_NOT_ALLOWED",
    "WEBHOOK_DELIVERY_FAILED",
    "WEBHOOK_NOT_FOUND",
    "WEBHOOK_RESPONSE_TOO_LARGE",
    "WEBHOOK_TOO_MANY_REDIRECTS",
    "WEBHOOK_URL_INVALID",
]

_S = grpc.StatusCode

WEBHOOK_URL_INVALID = define(
    "E090-WEBHOOK_URL_INVALID",
    "Invalid webhook URL",
    "The webhook URL is not an absolute http:// or https:// URL with a host.",
    "Give an absolute URL such as https://example.com/hooks/reelcast.",
    _S.INVALID_ARGUMENT,
    400,
)
WEBHOOK_ADDRESS_NOT_ALLOWED = define(
    "E091-WEBHOOK_ADDRESS_NOT_ALLOWED",
    "Webhook address not allowed",
    "The webhook's host resolves to a private, loopback, link-local, shared (CGNAT), multicast or metadata "
    "address, which this server does not send to.",
    "Point the webhook at a public address. An operator who means to deliver inside the network allows it "
    "with REELCAST_WEBHOOK_ALLOW_PRIVATE=1 or a CIDR list in REELCAST_WEBHOOK_ALLOWED_CIDRS.",
    _S.INVALID_ARGUMENT,
    400,
)
WEBHOOK_TOO_MANY_REDIRECTS = define(
    "E092-WEBHOOK_TOO_MANY_REDIRECTS",
    "Too many webhook redirects",
    "The webhook receiver redirected more times than the server follows.",
    "Register the final URL of the receiver instead of one that redirects.",
    _S.FAILED_PRECONDITION,
    400,
)
WEBHOOK_DELIVERY_FAILED = define(
    "E093-WEBHOOK_DELIVERY_FAILED",
    "Webhook delivery failed",
    "The webhook receiver did not answer with a 2xx status in time.",
    "Check that the receiver is up, answers within the delivery timeout with a 2xx status, then replay the "
    "endpoint's deliveries.",
    _S.UNAVAILABLE,
    502,
)
WEBHOOK_RESPONSE_TOO_LARGE = define(
    "E094-WEBHOOK_RESPONSE_TOO_LARGE",
    "Webhook response too large",
    "The webhook receiver's answer was longer than the server reads; the connection was dropped.",
    "Answer deliveries with a short body (an empty 204 is enough).",
    _S.UNAVAILABLE,
    502,
)
WEBHOOKS_NOT_AVAILABLE = define(
    "E095-WEBHOOKS_NOT_AVAILABLE",
    "Webhooks not available",
    "This server's store does not deliver webhooks (the embedded SQLite and NATS stores do).",
    "Run the server on the embedded or the NATS store, or follow the jobs with WatchJobs (GET /api/events).",
    _S.FAILED_PRECONDITION,
    409,
)
WEBHOOK_NOT_FOUND = define(
    "E096-WEBHOOK_NOT_FOUND",
    "Webhook not found",
    "No webhook endpoint of yours has this id.",
    "List your endpoints (ListWebhooks, GET /api/webhooks) for their ids.",
    _S.NOT_FOUND,
    404,
)
