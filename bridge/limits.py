"""Open SSE connections per user: at most ``limit`` at once; the next one is 429 with ``Retry-After``.

The user is the name the gRPC server reports for the caller's own credential (``x-reelcast-user``), so a user
with several keys, a session and stream tokens still has one allowance. With authentication off every caller
is ``anonymous`` and there is no per-user count.
"""

from __future__ import annotations

from collections import Counter

from reelcast.bridge.problems import ApiError
from reelcast.jobs import errors
from reelcast.jobs.metadata import ANONYMOUS

RETRY_AFTER_SECONDS = 5


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = Counter[str]()

    def acquire(self, user: str) -> None:
        """Takes a slot for ``user`` or raises the 429."""
        if user == ANONYMOUS:
            return
        if self.open[user] >= self.limit:
            raise ApiError(
                errors.TOO_MANY_STREAMS,
                f"You have {self.open[user]} open event streams; the limit is {self.limit}.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.open[user] += 1

    def release(self, user: str) -> None:
        if user == ANONYMOUS:
            return
        self.open[user] -= 1
        if self.open[user] <= 0:
            del self.open[user]
