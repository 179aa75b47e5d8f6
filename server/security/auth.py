"""Who is calling: API keys and per-job stream tokens, read from ``authorization`` metadata.

Three credentials are accepted:

- ``Bearer <key>``: an API key from the key store (server/security/keys.py).
- ``Session <token>``: a browser session opened with a key (``x-reelcast-session: open`` on a call made with
  the key answers with a session token in initial metadata; ``close`` on a call made with the session ends
  it). It acts as its key while the key is unrevoked and the session has not ended (server/security/keys.py).
- ``StreamToken <token>``: a short-lived token signed for one job and one user, for browsers that cannot
  send headers (EventSource, ``<video>``). A token is valid only for GetJob, WatchJob and ReadJobArtifact of
  its own job, and only while the key it was issued through is not revoked.

Tokens are HMAC-SHA256 signed with a secret kept in the data dir (``secrets/stream-token.key``, mode 0600),
or on NATS in the deployment's keys bucket (server/storage/nats/keys.py).
Only the gRPC server holds that secret: the bridge forwards a token without being able to make one, so it
never holds anything that would let it act as a user who did not ask.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from reelcast.server.security.keys import ApiKey, ApiKeys, Session

TOKEN_METHODS = frozenset({"GetJob", "WatchJob", "ReadJobArtifact"})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``job_id`` is set when the credential is a stream token for that job,
    ``session_id`` when it is a browser session."""

    user: str
    admin: bool
    key_id: str
    job_id: str | None = None
    session_id: str | None = None


principal_var: ContextVar[Principal | None] = ContextVar("reelcast_principal", default=None)


def load_or_create_secret(path: Path) -> bytes:
    """The 32-byte token secret at ``path``, created (readable by the owner only) on first use."""
    if path.exists():
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    secret = secrets.token_bytes(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class StreamClaims:
    user: str
    key_id: str
    job_id: str
    expires_at: float


class StreamTokens:
    """Signs and checks stream tokens: ``base64(user\\nkey id\\njob id\\nexpiry) . base64(hmac)``."""

    def __init__(self, secret: bytes, ttl_seconds: float) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def use_secret(self, secret: bytes) -> None:
        """Signs and checks with ``secret`` from now on (the deployment's shared one, once it is known)."""
        self._secret = secret

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, b"reelcast-stream-token-v1\n" + payload, hashlib.sha256).digest()

    def issue(self, user: str, key_id: str, job_id: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.ttl_seconds)
        payload = f"{user}\n{key_id}\n{job_id}\n{expires}".encode()
        return f"{_b64(payload)}.{_b64(self._signature(payload))}"

    def verify(self, token: str, now: float | None = None) -> StreamClaims | None:
        """The token's claims if it is well formed, correctly signed and not expired; else None."""
        payload_text, _, signature_text = token.partition(".")
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
        except (ValueError, UnicodeError):
            return None
        if not hmac.compare_digest(signature, self._signature(payload)):
            return None
        try:
            user, key_id, job_id, expires = payload.decode().split("\n")
            expires_at = float(expires)
        except ValueError:
            return None
        if expires_at < (now if now is not None else time.time()):
            return None
        return StreamClaims(user, key_id, job_id, expires_at)


class Authenticator:
    """Turns an ``authorization`` value into a :class:`Principal` (or None)."""

    def __init__(
        self,
        keys: ApiKeys,
        tokens: StreamTokens,
        session_ttl_seconds: float = 12 * 3600.0,
        max_sessions_per_user: int = 100,
    ) -> None:
        self.keys = keys
        self.tokens = tokens
        self.session_ttl_seconds = session_ttl_seconds
        self.max_sessions_per_user = max_sessions_per_user

    async def authenticate(self, authorization: str | None) -> Principal | None:
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        if not credential or len(credential) > 1024:
            return None
        scheme = scheme.lower()
        if scheme == "bearer":
            key = await self.keys.averify(credential)
            return Principal(key.user, key.admin, key.id) if key is not None else None
        if scheme == "streamtoken":
            claims = self.tokens.verify(credential)
            if claims is None:
                return None
            stored = await self.keys.aget_active(claims.key_id)
            if stored is None or stored.user != claims.user:
                return None
            return Principal(stored.user, stored.admin, stored.id, job_id=claims.job_id)
        if scheme == "session":
            session = await self.keys.averify_session(credential)
            return await self._session_principal(session) if session is not None else None
        return None

    async def _session_principal(self, session: Session) -> Principal | None:
        stored = await self.keys.aget_active(session.key_id)
        if stored is None or stored.user != session.user:
            return None
        return Principal(stored.user, stored.admin, stored.id, session_id=session.id)

    async def open_session(self, principal: Principal) -> str | None:
        """A session token for a caller that came with an API key (a session or a stream token cannot open
        one); None for other callers."""
        if principal.job_id is not None or principal.session_id is not None:
            return None
        key = await self.keys.aget_active(principal.key_id)
        if key is None:
            return None
        return await self.keys.aopen_session(key, self.session_ttl_seconds, self.max_sessions_per_user)

    async def close_session(self, principal: Principal) -> None:
        if principal.session_id is not None:
            await self.keys.aclose_session(principal.session_id)

    async def still_valid(self, principal: Principal) -> bool:
        """Whether the key behind ``principal`` is still unrevoked, and its session (if it is one) has not
        ended (open streams ask this periodically)."""
        if await self.keys.aget_active(principal.key_id) is None:
            return False
        return principal.session_id is None or await self.keys.aget_session(principal.session_id) is not None


def key_record(key: ApiKey) -> dict[str, object]:
    """A key as ``keys list`` prints it (never the secret: it is not stored)."""
    return {"id": key.id, "user": key.user, "admin": key.admin, "revoked": key.revoked}
