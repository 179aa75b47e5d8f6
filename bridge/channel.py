"""The bridge's one gRPC channel to the ``JobService``: the client's retry policy, deadlines and keepalive.

The bridge is a gRPC client like any other, so its channel is opened as ``reelcast.client`` opens its own
(:class:`~reelcast.client.connection.Connection`: TLS roots, the retry service config that retries the safe
unary methods on UNAVAILABLE with backoff, the reconnect backoff), with these additions:

- **Deadlines.** Every unary call gets ``deadline_seconds`` unless it sets its own, from one interceptor
  (:class:`UnaryDeadline`) rather than at each call site, so no call can forget it: a server that takes a
  call and never answers costs a browser a 503 E013-UPSTREAM_UNAVAILABLE after the deadline, never a hung
  request. The deadline bounds the retries too. The streams (``WatchJob``, artifact reads) get none: they last
  as long as their job or their download. (A ``timeout`` in the service config would say the same, but
  grpc.aio 1.85 expires such calls at once or after a fraction of it, before they reach the server.)
- **Keepalive.** HTTP/2 pings every ``keepalive_seconds``, on idle connections and quiet streams alike, so a
  connection that died without a FIN or RST (a crashed host, a NAT or load balancer that forgot it) is noticed
  within ``keepalive_seconds + KEEPALIVE_TIMEOUT_SECONDS``: its streams fail, their SSE responses end and the
  browsers resume with ``Last-Event-ID``, instead of waiting on a dead socket for ever. The server accepts
  pings 5 s apart or more (server/app.py; closer ones are strikes, and a third strike is a GOAWAY
  ``too_many_pings``), so the interval may not go below ``MIN_KEEPALIVE_SECONDS``.
- **Ping timeout.** grpcio 1.85 closes a connection whose ping goes unanswered after
  ``grpc.http2.ping_timeout_ms`` (a minute by default), whatever ``grpc.keepalive_timeout_ms`` says, so both
  are set to ``KEEPALIVE_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grpc import aio

from reelcast.client.connection import Connection

DEADLINE_SECONDS = 15.0
KEEPALIVE_SECONDS = 20.0
KEEPALIVE_TIMEOUT_SECONDS = 10.0
# The server strikes pings closer than 5 s (server/app.py: grpc.http2.min_ping_interval_without_data_ms); a
# second more leaves room for timer jitter.
MIN_KEEPALIVE_SECONDS = 6.0


class UnaryDeadline(aio.UnaryUnaryClientInterceptor):
    """Gives every unary call without a timeout of its own the bridge's upstream deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[[aio.ClientCallDetails, Any], Any],
        details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if details.timeout is None:
            details = aio.ClientCallDetails(
                details.method, self.seconds, details.metadata, details.credentials, details.wait_for_ready
            )
        return await continuation(details, request)


def channel_options(connection: Connection, keepalive_seconds: float) -> list[tuple[str, Any]]:
    """The client's channel options (its retry service config included), with the keepalive pings."""
    options = dict(connection.options())
    options["grpc.keepalive_time_ms"] = int(keepalive_seconds * 1000)
    options["grpc.keepalive_timeout_ms"] = int(KEEPALIVE_TIMEOUT_SECONDS * 1000)
    # grpcio 1.85 waits for a ping's ack this long, whatever keepalive_timeout_ms says (default: a minute).
    options["grpc.http2.ping_timeout_ms"] = int(KEEPALIVE_TIMEOUT_SECONDS * 1000)
    options["grpc.keepalive_permit_without_calls"] = 1
    # Keep pinging a stream that stays quiet (a long render): gRPC stops after 2 pings without data otherwise.
    options["grpc.http2.max_pings_without_data"] = 0
    return list(options.items())


def check_channel_settings(deadline_seconds: float, keepalive_seconds: float) -> None:
    """ValueError for a deadline that is not positive or a keepalive the server would punish."""
    if not deadline_seconds > 0:
        raise ValueError(f"the upstream deadline must be positive seconds, not {deadline_seconds!r}")
    if not keepalive_seconds >= MIN_KEEPALIVE_SECONDS:
        raise ValueError(
            f"the upstream keepalive interval must be at least {MIN_KEEPALIVE_SECONDS:g} s, not "
            f"{keepalive_seconds!r}: the server answers more frequent pings with GOAWAY too_many_pings"
        )


def open_channel(
    target: str,
    root_certificates: bytes | None,
    *,
    deadline_seconds: float = DEADLINE_SECONDS,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> aio.Channel:
    """The channel to ``target``: TLS trusting ``root_certificates`` (PEM) if given, else plain TCP."""
    check_channel_settings(deadline_seconds, keepalive_seconds)
    connection = Connection.resolve(
        target,
        api_key="",  # credentials are per call: the browser's own (bridge/state.py grpc_metadata)
        root_certificates=root_certificates,
        tls=None,
        timeout=None,
        retry=None,
        correlation_id=None,
        channel_options=(),
    )
    options = channel_options(connection, keepalive_seconds)
    interceptors = [UnaryDeadline(deadline_seconds)]
    credentials = connection.credentials()
    if credentials is None:
        return aio.insecure_channel(target, options=options, interceptors=interceptors)
    return aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
