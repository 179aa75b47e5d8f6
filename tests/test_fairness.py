"""The fair scheduling policy (server/storage/fairness.py) on its own: weights, virtual time, the cap and the
simulated start order that ``WorkQueue.waiting_order`` returns. Both backends' queues run on it
(tests/nats/test_fair_scheduling.py shows them with real servers)."""

from __future__ import annotations

import pytest

from reelcast.server.config import Settings
from reelcast.server.storage.fairness import FairPolicy, FairShares, start_order


def starts(shares: FairShares, policy: FairPolicy, waiting: set[str], count: int) -> list[str]:
    order = []
    for _ in range(count):
        shares.admit(waiting)
        user = shares.next_user(waiting, {}, policy)
        assert user is not None
        shares.started(user, policy)
        order.append(user)
    return order


def test_a_user_of_weight_two_gets_two_starts_for_each_of_a_user_of_weight_one() -> None:
    policy = FairPolicy(weights={"alice": 2.0})
    order = starts(FairShares(), policy, {"alice", "bob"}, 9)
    assert order.count("alice") == 6 and order.count("bob") == 3
    assert "bob" in order[:2]  # ties go to the user whose last start is oldest


def test_a_user_who_was_idle_banks_no_credit_and_starts_level_with_those_waiting() -> None:
    policy, shares = FairPolicy(), FairShares()
    starts(shares, policy, {"bob"}, 10)  # bob alone for a while
    order = starts(shares, policy, {"alice", "bob"}, 6)
    # alice starts at bob's count: she alternates with him rather than taking ten turns in a row.
    assert order == ["alice", "bob", "alice", "bob", "alice", "bob"]


def test_start_order_skips_a_user_at_the_cap_until_everyone_left_is_capped() -> None:
    policy = FairPolicy(max_running=1)
    waiting = {"bob": ["b1", "b2", "b3"], "alice": ["a1", "a2"]}
    assert start_order(FairShares(), waiting, {"bob": 1}, policy) == ["a1", "b1", "a2", "b2", "b3"]
    assert start_order(FairShares(), {"bob": ["b1", "b2", "b3"], "alice": ["a1"]}, {}, FairPolicy()) == [
        "a1",
        "b1",
        "b2",
        "b3",
    ]


def test_user_weights_setting_parses_pairs_and_refuses_a_weight_that_is_not_positive() -> None:
    settings = Settings.from_env({"REELCAST_USER_WEIGHTS": "alice=2, bob=0.5", "REELCAST_AUTH": "off"})
    assert settings.user_weights == {"alice": 2.0, "bob": 0.5}
    for bad in ("alice", "alice=0", "=2", "alice=two"):
        with pytest.raises(ValueError, match="REELCAST_USER_WEIGHTS"):
            Settings.from_env({"REELCAST_USER_WEIGHTS": bad, "REELCAST_AUTH": "off"})
