"""Fair scheduling: which waiting job a free worker slot starts next. Pure policy, no I/O, shared by both
backends: the embedded queue keeps a ``FairShares`` in memory, the NATS queue in one KV entry that workers
update with compare-and-swap (docs/operations.md, "Fair scheduling").

- Between users, weighted fair queueing on start counts: the next slot goes to the waiting user with the
  fewest starts divided by their weight (``REELCAST_USER_WEIGHTS``); ties go to the user whose last start is
  oldest, then by user id so that every worker picks the same.
- Virtual time: a user whose first job starts waiting is raised to the least served of the users already
  waiting (or to where that floor stood last), so that a user who was idle banks no credit.
- A user with ``max_running`` running jobs is skipped, not waited for (0: no cap).
- Within one user: high, then normal, then low priority, first queued first within each.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reelcast.jobs.priorities import PRIORITY_WORDS, priority_word

# A priority's rank is its place in PRIORITY_WORDS (high first); unspecified means normal (job.proto).
PRIORITY_NAMES = PRIORITY_WORDS


def priority_rank(priority: int) -> int:
    return PRIORITY_WORDS.index(priority_word(priority))


@dataclass(frozen=True)
class FairPolicy:
    """The operator's settings: per-user weights and the cap on one user's running jobs (0: none)."""

    weights: Mapping[str, float] = field(default_factory=dict)
    max_running: int = 0

    def weight(self, user: str) -> float:
        return self.weights.get(user, 1.0)

    def may_start(self, user: str, running: Mapping[str, int]) -> bool:
        return self.max_running <= 0 or running.get(user, 0) < self.max_running


@dataclass
class FairShares:
    """How much each user has been served, in virtual time (starts / weight), and when each last started."""

    served: dict[str, float] = field(default_factory=dict)
    last_start: dict[str, int] = field(default_factory=dict)
    clock: int = 0
    # The floor a newly waiting user is raised to; it only grows.
    virtual_time: float = 0.0
    # The users that had waiting jobs at the last ``admit``.
    waiting: set[str] = field(default_factory=set)

    def admit(self, waiting_users: Iterable[str]) -> None:
        """Records who waits now; users who did not wait before are raised to the virtual time."""
        now = set(waiting_users)
        already = now & self.waiting
        if already:
            self.virtual_time = max(self.virtual_time, min(self.served.get(user, 0.0) for user in already))
        for user in now - self.waiting:
            self.served[user] = max(self.served.get(user, 0.0), self.virtual_time)
        self.waiting = now

    def next_user(
        self, waiting_users: Iterable[str], running: Mapping[str, int], policy: FairPolicy
    ) -> str | None:
        """The user whose job starts at the next free slot; None when every waiting user is at the cap."""
        eligible = [user for user in waiting_users if policy.may_start(user, running)]
        if not eligible:
            return None
        return min(
            eligible, key=lambda user: (self.served.get(user, 0.0), self.last_start.get(user, -1), user)
        )

    def started(self, user: str, policy: FairPolicy) -> None:
        self.clock += 1
        self.served[user] = self.served.get(user, 0.0) + 1.0 / policy.weight(user)
        self.last_start[user] = self.clock

    def unstarted(self, user: str, policy: FairPolicy, previous_last_start: int | None) -> None:
        """Takes back a turn taken by ``started`` when the user's job was gone (another worker took it)."""
        self.served[user] = max(0.0, self.served.get(user, 0.0) - 1.0 / policy.weight(user))
        if previous_last_start is None:
            self.last_start.pop(user, None)
        else:
            self.last_start[user] = previous_last_start

    def to_json(self) -> dict[str, Any]:
        return {
            "served": self.served,
            "last_start": self.last_start,
            "clock": self.clock,
            "virtual_time": self.virtual_time,
            "waiting": sorted(self.waiting),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> FairShares:
        if not document:
            return cls()
        return cls(
            served={str(k): float(v) for k, v in dict(document.get("served", {})).items()},
            last_start={str(k): int(v) for k, v in dict(document.get("last_start", {})).items()},
            clock=int(document.get("clock", 0)),
            virtual_time=float(document.get("virtual_time", 0.0)),
            waiting=set(document.get("waiting", [])),
        )


def start_order(
    shares: FairShares,
    waiting_jobs: Mapping[str, Sequence[str]],
    running: Mapping[str, int],
    policy: FairPolicy,
) -> list[str]:
    """Every waiting job id in the order the scheduler would start them, simulated from ``shares``:
    ``waiting_jobs`` holds each user's jobs in their own order (priority, then first queued). When every
    user left is at the cap, each of them is assumed to finish one running job (the next free slot is
    theirs: nobody else waits)."""
    simulated = copy.deepcopy(shares)
    simulated.admit(user for user, jobs in waiting_jobs.items() if jobs)
    running_now = dict(running)
    next_index = dict.fromkeys(waiting_jobs, 0)
    order: list[str] = []
    while True:
        left = [user for user, jobs in waiting_jobs.items() if next_index[user] < len(jobs)]
        if not left:
            return order
        user = simulated.next_user(left, running_now, policy)
        if user is None:
            for capped in left:
                running_now[capped] = min(running_now.get(capped, 0), policy.max_running) - 1
            continue
        order.append(waiting_jobs[user][next_index[user]])
        next_index[user] += 1
        simulated.started(user, policy)
        running_now[user] = running_now.get(user, 0) + 1
