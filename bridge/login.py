"""Logging in and out, and stream tokens: the routes that turn an API key into browser credentials.

``POST /api/session`` checks the key with the gRPC server (the bridge cannot tell a good key from a bad one
itself), which opens a session in the backend (server/security/keys.py); the answer carries its token in an
HttpOnly, SameSite=Strict cookie. It takes JSON only, and only from the bridge's own origin (``Origin``, else
``Sec-Fetch-Site``; the scheme counts), so a foreign page cannot log a browser into another account (login
CSRF). ``GET /login?key=`` serves the login URL that ``reelcast serve`` prints on first start: typed or pasted
into a browser without a session it logs in and redirects, so the key leaves the address bar at once; followed
from another site, or over a session of someone else, it first asks, on a page naming both users (``POST
/login`` confirms). ``GET /api/me`` names the caller, for the page's header. ``POST
/api/jobs/{id}/stream-token`` asks the server to sign a token for that one job.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterable
from urllib.parse import parse_qs

import grpc
import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from reelcast.bridge.auth import (
    SESSION_COOKIE,
    SESSION_PREFIX,
    credential_var,
    is_credential_text,
    is_same_origin,
)
from reelcast.bridge.problems import ApiError
from reelcast.bridge.rest import struct_response
from reelcast.bridge.state import bridge_state, checked_job_id, grpc_metadata
from reelcast.jobs import errors
from reelcast.jobs.metadata import SESSION_HEADER, STREAM_TOKEN_HEADER
from reelcast.jobs.v1 import job_service_pb2

# Where the login URL lands once the cookie is set: the web page.
LOGIN_REDIRECT = "/"


# Login bodies (a key, as JSON or as the confirmation page's form) are tiny.
MAX_LOGIN_BODY = 4096


class SessionBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """``POST /api/session``'s JSON body (a Bearer header does as well)."""

    api_key: str


class SessionUser(msgspec.Struct):
    """Who a session or key acts as: ``POST /api/session`` and ``GET /api/me``."""

    user: str


class StreamToken(msgspec.Struct):
    """``POST /api/jobs/{jobId}/stream-token``: a short-lived token for ``?token=``."""

    token: str


# The login routes' bodies, for the OpenAPI document's components (bridge/openapi.py).
LOGIN_SCHEMA_TYPES: tuple[type[msgspec.Struct], ...] = (SessionBody, SessionUser, StreamToken)


def _metadata_text(metadata: Iterable[tuple[str, str | bytes]] | None, name: str) -> str:
    for key, value in metadata or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return ""


async def _call_as(request: Request, credential: str, session_request: str = "") -> tuple[str, str]:
    """Asks the server who ``credential`` acts as (``GetCaller``): (that user, the session token the server
    made when ``session_request`` is "open"). 401 if the credential is not valid."""
    token = credential_var.set(credential)
    try:
        metadata = grpc_metadata()
        if session_request:
            metadata = (*metadata, (SESSION_HEADER, session_request))
        call = bridge_state(request).jobs.GetCaller(job_service_pb2.GetCallerRequest(), metadata=metadata)
        reply = await call
        # Sessions are opened and closed by the server's interceptor, on any call, in its response metadata.
        initial = await call.initial_metadata()
    finally:
        credential_var.reset(token)
    return reply.caller.user, _metadata_text(initial, SESSION_HEADER)


async def _current_user(request: Request) -> str | None:
    """The user of the session cookie this request carries, if it is still valid."""
    credential = credential_var.get()
    if not credential.startswith(SESSION_PREFIX):
        return None
    try:
        return (await _call_as(request, credential))[0]
    except grpc.RpcError:
        return None


async def _logged_in(request: Request, response: Response, credential: str) -> Response:
    """Opens a session with ``credential`` (a key) and sets its cookie on ``response``. With authentication
    off the server opens none, and no cookie is needed."""
    state = bridge_state(request)
    _user, session = await _call_as(request, credential, "open")
    if session:
        response.set_cookie(
            SESSION_COOKIE,
            session,
            max_age=int(state.settings.session_ttl_seconds),
            path="/",
            httponly=True,
            samesite="strict",
            secure=state.settings.tls,
        )
    return response


def _key_credential(key: str) -> str:
    key = key.strip()
    if len(key) > 256 or not is_credential_text(key):
        raise ApiError(errors.UNAUTHENTICATED, "An API key is required.")
    return f"Bearer {key}"


def _require_same_origin(request: Request) -> None:
    if not is_same_origin(request.scope, bridge_state(request).settings.cors_origins):
        raise ApiError(errors.ORIGIN_NOT_ALLOWED, "Sessions are opened from the bridge's own page only.")


async def open_session(request: Request) -> Response:
    """The key comes as ``Authorization: Bearer`` or as ``{"apiKey": ...}`` (JSON only)."""
    _require_same_origin(request)
    credential = credential_var.get()
    if not credential.startswith("Bearer "):
        raw = await request.body()
        if len(raw) > MAX_LOGIN_BODY:
            raise ApiError(errors.BODY_TOO_LARGE, f"The body exceeds {MAX_LOGIN_BODY} bytes.")
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if raw and media_type != "application/json":  # no body is no key: the 401 below
            raise ApiError(errors.UNSUPPORTED_MEDIA_TYPE, 'Send the key as JSON: {"apiKey": "..."}.')
        try:
            body = msgspec.json.decode(raw, type=SessionBody)
        except msgspec.MsgspecError:
            raise ApiError(errors.UNAUTHENTICATED, "Send the key as Authorization: Bearer.") from None
        credential = _key_credential(body.api_key)
    user, _ = await _call_as(request, credential)
    return await _logged_in(request, struct_response(SessionUser(user), 201), credential)


async def close_session(request: Request) -> Response:
    credential = credential_var.get()
    if credential.startswith(SESSION_PREFIX):
        # Ended already (logout elsewhere, revoked key)? The cookie goes all the same.
        with contextlib.suppress(grpc.RpcError):
            await _call_as(request, credential, "close")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def current_user(request: Request) -> Response:
    """``GET /api/me``: who the caller is (the page's header shows it)."""
    user, _ = await _call_as(request, credential_var.get())
    return struct_response(SessionUser(user))


def _confirmation_page(key: str, new_user: str, current: str | None) -> HTMLResponse:
    """Asks before a login link opens a session: names who the link logs in as, and who is logged in now
    (when the browser sent its session; a link followed from another site comes without it)."""
    new = html.escape(new_user)
    if current:
        now = (
            f"<p>You are logged in as <strong id='current-user'>{html.escape(current)}</strong>. "
            "Logging in replaces that session.</p>"
        )
    else:
        # Filled in by the page's script, which the browser sends the cookie with.
        now = (
            "<p id='current-session'>If this browser is logged in already, that session is replaced.</p>"
            "<script type='module' src='/static/confirm.js'></script>"
        )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in as {new}? · reelcast</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><main class="card login" id="login-confirmation">
<h1>Log in as {new}?</h1>
<p>This link logs you in as <strong id="link-user">{new}</strong>.</p>
{now}
<form method="post" action="/login">
<input type="hidden" name="key" value="{html.escape(key)}">
<button class="button" type="submit">Log in as {new}</button>
<a class="button secondary" href="/">Cancel</a>
</form></main></body></html>"""
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


async def login(request: Request) -> Response:
    """``GET /login?key=``: logs in at once only when the link was opened by the user (typed, pasted, or
    from the bridge's own page) over no session or one of the same user; otherwise asks first."""
    key = request.query_params.get("key", "")
    credential = _key_credential(key)
    new_user, _ = await _call_as(request, credential)
    fetch_site = request.headers.get("sec-fetch-site", "").strip().lower()
    current = await _current_user(request)
    # No Sec-Fetch-Site: no browser of this decade, and no cross-site navigation of one.
    if fetch_site in ("", "none", "same-origin") and current in (None, new_user):
        return await _logged_in(request, RedirectResponse(LOGIN_REDIRECT, status_code=303), credential)
    return _confirmation_page(key.strip(), new_user, current)


async def confirm_login(request: Request) -> Response:
    """``POST /login`` from the confirmation page (a form, so same-origin is checked, not the media type)."""
    _require_same_origin(request)
    raw = await request.body()
    if len(raw) > MAX_LOGIN_BODY:
        raise ApiError(errors.BODY_TOO_LARGE, f"The body exceeds {MAX_LOGIN_BODY} bytes.")
    values = parse_qs(raw.decode("latin-1")).get("key", [])
    credential = _key_credential(values[0] if values else "")
    await _call_as(request, credential)
    return await _logged_in(request, RedirectResponse(LOGIN_REDIRECT, status_code=303), credential)


async def stream_token(request: Request) -> Response:
    job_id = checked_job_id(request)
    metadata = (*grpc_metadata(), (STREAM_TOKEN_HEADER, "request"))
    call = bridge_state(request).jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), metadata=metadata)
    await call
    for key, value in await call.trailing_metadata() or ():
        if key == STREAM_TOKEN_HEADER:
            token = value if isinstance(value, str) else value.decode()
            return struct_response(StreamToken(token), 201)
    # The server issues tokens only with authentication on, and only to key holders.
    raise ApiError(errors.INVALID_REQUEST, "Stream tokens are issued to API-key or session callers only.")
