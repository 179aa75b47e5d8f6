"""Per-user limits: a token bucket for the job creation rate, a lock so the cap on queued plus running jobs is
checked and the job created as one step, and a count of open streams.

Limits apply to authenticated users. With authentication off (``REELCAST_AUTH=off``) every caller is the one
``anonymous`` user, so a per-user limit would be a global one; none applies then (docs/security.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """One bucket per user: ``burst`` tokens, refilled at ``rate_per_minute``; a creation takes one."""

    rate_per_minute: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, user: str, now: float | None = None) -> float:
        """0.0 if ``user`` may create a job now (a token is taken), else the seconds until one is due."""
        now = time.monotonic() if now is None else now
        rate = self.rate_per_minute / 60.0
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        if rate <= 0:
            return 60.0
        return (1.0 - bucket.tokens) / rate


class UserLocks:
    """One asyncio lock per user, so the active-job cap is checked and the job created as one step."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, user: str) -> asyncio.Lock:
        lock = self._locks.get(user)
        if lock is None:
            lock = self._locks[user] = asyncio.Lock()
        return lock


class StreamSlots:
    """At most ``limit`` open streams per user in this process; a stream takes a slot and gives it back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = Counter[str]()

    def acquire(self, user: str) -> bool:
        """Takes a slot for ``user``; False (nothing taken) when ``user`` already holds ``limit``."""
        if self.open[user] >= self.limit:
            return False
        self.open[user] += 1
        return True

    def release(self, user: str) -> None:
        self.open[user] -= 1
        if self.open[user] <= 0:
            del self.open[user]
