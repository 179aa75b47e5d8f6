"""Standard Webhooks signatures (https://www.standardwebhooks.com): ``whsec_`` secrets and the
``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers, signed with the spec's own
``standardwebhooks`` package rather than a second HMAC of ours."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 32 random bytes in base64 (the spec's format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(
    message_id: str, body: bytes, signing_secrets: Sequence[str], now: datetime
) -> dict[str, str]:
    """The three headers of one delivery attempt. Every secret in ``signing_secrets`` signs (during a
    rotation's overlap, the new and the previous one): the signatures are space-separated, as the spec allows,
    so a receiver that knows either verifies."""
    timestamp = now.astimezone(UTC)
    data = body.decode()
    signatures = " ".join(Webhook(secret).sign(message_id, timestamp, data) for secret in signing_secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
