"""Who is calling the bridge, and how that identity reaches gRPC.

The bridge holds no key of its own. Each request's credential is forwarded as ``authorization`` metadata on
every gRPC call made for it, so ``JobService`` decides, with the caller's own identity, what the caller may
see. Three ways in:

- ``Authorization: Bearer <key>`` (API clients);
- the ``reelcast_session`` cookie from ``POST /api/session`` (HttpOnly, SameSite=Strict): a session token that
  the gRPC server made and stores (server/security/keys.py), forwarded as ``Session <token>``. The bridge
  keeps no session state, so a session works on every bridge of a deployment and after a restart; ``DELETE
  /api/session`` ends it on the server, hence everywhere;
- ``?token=`` on GET routes of one job: a stream token that only the gRPC server can sign and check (the
  bridge cannot make one), for EventSource and ``<video>``, which cannot send headers.

A request with none of them gets 401 at once when authentication is required. A credential that is present
is checked by the server: a wrong or revoked key comes back UNAUTHENTICATED, which the bridge answers 401.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextvars import ContextVar

import grpc
from grpc import aio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelcast.bridge.problems import ApiError, problem_response
from reelcast.jobs import errors
from reelcast.jobs.metadata import AUTHORIZATION_HEADER
from reelcast.jobs.v1 import job_service_pb2

SESSION_COOKIE = "reelcast_session"
# How a stream token travels as a credential (the server checks its signature and expiry; the bridge cannot).
STREAM_TOKEN_PREFIX = "StreamToken "
# How a session cookie's token travels as a credential (the server checks it).
SESSION_PREFIX = "Session "
# Credentials whose server check is remembered at once, at most (then the memory starts over).
MAX_VERIFIED = 10_000
# Routes anyone may call: liveness, the API description, logging in, and the web page with its static files
# (the page holds no data; it logs in, then calls the API).
OPEN_PATHS = frozenset({"/", "/healthz", "/api/openapi.json", "/api/session", "/login"})
OPEN_PREFIXES = ("/static/",)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The routes a stream token may open (GET only), and how long a key checked with the server stays checked.
_TOKEN_PATH = re.compile(r"^/api/jobs/[^/]+(/events|/output|/thumbnail|/subtitles|/webvtt|/preview)?$")
VERIFIED_SECONDS = 1.0

# What a key or token can look like; anything else (spaces, control or non-ASCII characters) cannot be sent
# as gRPC metadata and is no credential.
_CREDENTIAL = re.compile(r"^[\x21-\x7e]{1,1024}$")


def is_credential_text(text: str) -> bool:
    return bool(_CREDENTIAL.match(text))


# The ``authorization`` value forwarded to gRPC for the current request ("" when there is none).
credential_var: ContextVar[str] = ContextVar("reelcast_bridge_credential", default="")


def credential_fingerprint(credential: str) -> str:
    """A short stable name of a credential (shared upstreams are kept per credential), never the secret."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16] if credential else ""


def is_same_origin(scope: Scope, allowed_origins: tuple[str, ...]) -> bool:
    """Whether a request comes from the bridge's own origin (scheme, host and port) or an allowed one.
    ``Origin`` decides when it names one; else ``Sec-Fetch-Site`` (``none`` is the user's own navigation).
    ``Origin: null`` (what a form on the bridge's own pages sends under its no-referrer policy, and what a
    sandboxed foreign frame sends) needs ``Sec-Fetch-Site: same-origin``. A request with neither header is
    no browser's cross-site request (browsers send one or both on unsafe ones)."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if origin and origin != "null":
        host = headers.get(b"host", b"").decode("latin-1")
        return origin in allowed_origins or origin == f"{scope.get('scheme', 'http')}://{host}"
    if origin == "null":
        return fetch_site == "same-origin"
    return fetch_site in ("", "same-origin", "none")


def _cookie(headers: dict[bytes, bytes], name: str) -> str:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _query_token(scope: Scope) -> str:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    return values[0] if values else ""


class AuthMiddleware:
    """Sets ``credential_var`` from the request; 401 without any credential when ``required``.

    Cookie-authenticated unsafe requests must come from an allowed origin (the bridge's own, or the CORS
    allow-list): SameSite=Strict already keeps the cookie off cross-site requests, this is the second lock.
    """

    def __init__(self, app: ASGIApp, required: bool, allowed_origins: tuple[str, ...]) -> None:
        self.app = app
        self.required = required
        self.allowed_origins = allowed_origins
        self._verified: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(AUTHORIZATION_HEADER.encode(), b"").decode("latin-1").strip()
        credential = ""
        via_cookie = False
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and is_credential_text(value.strip()):
                credential = f"Bearer {value.strip()}"
            else:
                await self._refuse(scope, receive, send, "Authorization must be 'Bearer <key>'.")
                return
        elif scope["method"] == "GET" and _query_token(scope):
            token_text = _query_token(scope)
            if not is_credential_text(token_text):
                await self._refuse(scope, receive, send, "The token is not valid.")
                return
            credential = f"{STREAM_TOKEN_PREFIX}{token_text}"
        else:
            session = _cookie(headers, SESSION_COOKIE)
            credential = f"{SESSION_PREFIX}{session}" if is_credential_text(session) else ""
            via_cookie = bool(credential)
        path = scope["path"]
        is_open = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if not credential and self.required and not is_open:
            await self._refuse(scope, receive, send, "")
            return
        if (
            via_cookie
            and scope["method"] in UNSAFE_METHODS
            and not is_same_origin(scope, self.allowed_origins)
        ):
            await problem_response(ApiError(errors.ORIGIN_NOT_ALLOWED))(scope, receive, send)
            return
        if credential and not is_open:
            if credential.startswith(STREAM_TOKEN_PREFIX) and not _TOKEN_PATH.match(path):
                await self._refuse(
                    scope, receive, send, "A stream token opens only its own job's GET routes."
                )
                return
            is_token = credential.startswith(STREAM_TOKEN_PREFIX)
            if not is_token and not await self._still_valid(scope, credential):
                await self._refuse(scope, receive, send, "")
                return
        token = credential_var.set(credential)
        try:
            await self.app(scope, receive, send)
        finally:
            credential_var.reset(token)

    async def _still_valid(self, scope: Scope, credential: str) -> bool:
        """Whether the server accepts ``credential``, asked at most once a second per credential. Routes
        that never call the server (the voice list) are thereby as closed as the others; routes that do
        are checked by the server again anyway."""
        now = time.monotonic()
        fingerprint = credential_fingerprint(credential)
        if self._verified.get(fingerprint, 0.0) > now:
            return True
        state = getattr(scope["app"].state, "bridge", None)
        if state is None:
            return True
        try:
            await state.jobs.ListStages(
                job_service_pb2.ListStagesRequest(),
                metadata=((AUTHORIZATION_HEADER, credential),),
                timeout=10,
            )
        except grpc.RpcError as error:
            if isinstance(error, aio.AioRpcError) and error.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._verified.pop(fingerprint, None)
                return False
            return True  # the server is unreachable: the route itself answers 503
        if len(self._verified) > MAX_VERIFIED:
            self._verified.clear()
        self._verified[fingerprint] = now + VERIFIED_SECONDS
        return True

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        problem = ApiError(errors.UNAUTHENTICATED, detail)
        await problem_response(problem)(scope, receive, _with_challenge(send))


def _with_challenge(send: Send) -> Send:
    async def send_challenge(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"www-authenticate", b'Bearer realm="reelcast"'),
            ]
        await send(message)

    return send_challenge
