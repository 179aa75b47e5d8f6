"""When and how soon the client tries again: exponential backoff with jitter, bounded in attempts and time.

One :class:`RetryPolicy` drives both kinds of retry. Unary calls are retried by gRPC itself (a service config
``retryPolicy`` built by :meth:`RetryPolicy.service_config`), on UNAVAILABLE only, for the methods that are
safe to repeat. ``watch_job`` reconnects by itself with :meth:`RetryPolicy.delays`, because gRPC never
retries a stream once a message arrived, and only the client knows the cursor to resume from.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from reelcast.client.errors import ReelcastError

SERVICE = "reelcast.jobs.v1.JobService"
# CancelJob is left out: a cancel that reached the server before the connection broke would be answered
# FAILED_PRECONDITION on the retry. CreateJob is safe because the client always sends a request_id.
RETRIED_UNARY_METHODS = ("CreateJob", "GetJob", "ListJobs", "ListStages")
# gRPC caps a service config retryPolicy at 5 attempts.
_GRPC_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for reconnecting: the n-th retry waits ``initial_backoff * multiplier ** (n - 1)`` seconds,
    capped at ``max_backoff``, times a random factor in ``[1 - jitter, 1 + jitter]`` (gRPC's own reconnect
    jitter), so that many clients cut off together do not come back together.

    A watch gives up after ``max_attempts`` consecutive failed reconnects, or when ``max_elapsed`` seconds
    have passed since its stream broke without a new event arriving; either bound resets with every event
    delivered. ``max_attempts=0`` turns reconnection off. Unary calls use at most 5 attempts (gRPC's cap).
    """

    max_attempts: int = 10
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_elapsed: float | None = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError("max_attempts must be 0 or more")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must be positive, with max_backoff >= initial_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be 1 or more")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def backoff(self, retry: int) -> float:
        """The delay before the ``retry``-th retry (1-based), jitter included."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def delays(self) -> Iterator[float]:
        """The delays of successive retries, ``max_attempts`` of them."""
        for retry in range(1, self.max_attempts + 1):
            yield self.backoff(retry)

    def service_config(self) -> str:
        """gRPC's service config (JSON) retrying the safe unary methods on UNAVAILABLE with this backoff."""
        attempts = min(_GRPC_MAX_ATTEMPTS, self.max_attempts + 1)
        method_config: dict[str, object] = {
            "name": [{"service": SERVICE, "method": method} for method in RETRIED_UNARY_METHODS]
        }
        if attempts >= 2:
            method_config["retryPolicy"] = {
                "maxAttempts": attempts,
                "initialBackoff": f"{self.initial_backoff:.3f}s",
                "maxBackoff": f"{self.max_backoff:.3f}s",
                "backoffMultiplier": self.multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
        return json.dumps({"methodConfig": [method_config]})


NO_RETRY = RetryPolicy(max_attempts=0)

_RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
_TRANSPORT = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def is_resumable(error: ReelcastError) -> bool:
    """Whether a broken watch should reconnect: the server went away (UNAVAILABLE, including E007 for a
    server shutting down; CANCELLED by a server stopping), or the transport broke (INTERNAL/UNKNOWN without a
    catalogue code, as a cut connection can surface). Anything the service itself refused (NOT_FOUND,
    UNAUTHENTICATED, INVALID_ARGUMENT, E500...) is final."""
    if error.status in _RESUMABLE:
        return True
    return error.status in _TRANSPORT and not error.code
