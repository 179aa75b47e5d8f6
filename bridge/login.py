"""Logging in and out, and stream tokens: the routes that turn an API key into browser credentials.

``POST /api/session`` checks the key with the gRPC server (the bridge cannot tell a good key from a bad one
itself) and answers with an HttpOnly, SameSite=Strict session cookie. ``GET /login?key=`` does the same for
the login URL that ``reelcast serve`` prints on first start, then redirects, so the key leaves the address
bar at once. ``POST /api/jobs/{id}/stream-token`` asks the server to sign a token for that one job.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from reelcast.bridge.auth import SESSION_COOKIE, credential_var, is_credential_text
from reelcast.bridge.problems import ApiError
from reelcast.bridge.state import bridge_state, checked_job_id, grpc_metadata
from reelcast.jobs.v1 import job_service_pb2
from reelcast.server import errors
from reelcast.server.auth import STREAM_TOKEN_HEADER, USER_HEADER
from reelcast.server.callcontext import ANONYMOUS

# Where the login URL lands once the cookie is set: the web page.
LOGIN_REDIRECT = "/"


class SessionBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    api_key: str


async def _user_of(request: Request, credential: str) -> str:
    """The user ``credential`` belongs to, as the gRPC server says; 401 if it is not valid."""
    token = credential_var.set(credential)
    try:
        call = bridge_state(request).jobs.ListJobs(
            job_service_pb2.ListJobsRequest(page_size=1), metadata=grpc_metadata()
        )
        await call
        metadata = await call.initial_metadata()
    finally:
        credential_var.reset(token)
    for key, value in metadata or ():
        if key == USER_HEADER:
            return value if isinstance(value, str) else value.decode()
    return ANONYMOUS


def _with_session_cookie(request: Request, response: Response, credential: str) -> Response:
    state = bridge_state(request)
    session_id = state.sessions.open(credential)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(state.settings.session_ttl_seconds),
        path="/",
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
    )
    return response


def _key_credential(key: str) -> str:
    key = key.strip()
    if len(key) > 256 or not is_credential_text(key):
        raise ApiError(errors.UNAUTHENTICATED, "An API key is required.")
    return f"Bearer {key}"


async def open_session(request: Request) -> Response:
    """The key comes as ``Authorization: Bearer`` or as ``{"apiKey": ...}``."""
    credential = credential_var.get()
    if not credential.startswith("Bearer "):
        raw = await request.body()
        if len(raw) > 4096:
            raise ApiError(errors.BODY_TOO_LARGE, "The body exceeds 4096 bytes.")
        try:
            body = msgspec.json.decode(raw, type=SessionBody)
        except msgspec.MsgspecError:
            raise ApiError(errors.UNAUTHENTICATED, "Send the key as Authorization: Bearer.") from None
        credential = _key_credential(body.api_key)
    user = await _user_of(request, credential)
    return _with_session_cookie(request, JSONResponse({"user": user}, status_code=201), credential)


async def close_session(request: Request) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        bridge_state(request).sessions.close(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def login(request: Request) -> Response:
    credential = _key_credential(request.query_params.get("key", ""))
    await _user_of(request, credential)
    response = RedirectResponse(LOGIN_REDIRECT, status_code=303)
    return _with_session_cookie(request, response, credential)


async def stream_token(request: Request) -> Response:
    job_id = checked_job_id(request)
    metadata = (*grpc_metadata(), (STREAM_TOKEN_HEADER, "request"))
    call = bridge_state(request).jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), metadata=metadata)
    await call
    for key, value in await call.trailing_metadata() or ():
        if key == STREAM_TOKEN_HEADER:
            token = value if isinstance(value, str) else value.decode()
            return JSONResponse({"token": token}, status_code=201)
    # The server issues tokens only with authentication on, and only to key holders.
    raise ApiError(errors.INVALID_REQUEST, "Stream tokens are issued to API-key or session callers only.")
