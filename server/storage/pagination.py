"""Opaque AIP-158 page tokens, bound to the filter they were issued for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence

from reelcast.server.storage.job_store import PageCursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens this module issues are about 150 characters; anything much longer is not one, and is not decoded.
MAX_PAGE_TOKEN_CHARS = 512


class InvalidPageTokenError(ValueError):
    pass


def filter_fingerprint(
    owner: str | None, statuses: Sequence[int], labels: Mapping[str, str] | None = None
) -> str:
    """What a page token is bound to: the caller and every filter, so a token from one filter is refused
    with another. Labels enter sorted, so the same selector written in another order is the same filter."""
    material = json.dumps(
        {"owner": owner, "statuses": sorted(set(statuses)), "labels": sorted((labels or {}).items())}
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def encode_page_token(cursor: PageCursor, fingerprint: str) -> str:
    payload = json.dumps({"f": fingerprint, "t": cursor.create_time_us, "i": cursor.job_id}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str) -> PageCursor:
    """The cursor in ``token``; InvalidPageTokenError if it is malformed or was issued for another filter."""
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidPageTokenError("page_token is malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        cursor = PageCursor(create_time_us=int(payload["t"]), job_id=str(payload["i"]))
        issued_for = str(payload["f"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise InvalidPageTokenError("page_token is malformed") from error
    if issued_for != fingerprint:
        raise InvalidPageTokenError("page_token was issued for a different filter")
    return cursor
