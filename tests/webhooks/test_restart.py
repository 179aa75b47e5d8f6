"""Durability of the outbox: a ``reelcast serve`` process killed with SIGKILL while 50 deliveries are
pending, then restarted on the same data dir, delivers all 50, in order (docs/webhooks.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.webhooks.endpoints import EventFilter
from reelcast.server.webhooks.registration import create_endpoint
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from tests.processes import ALL_BUILTINS, ServerProcess
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhooks.conftest import create_job, run_job, wait_until

RETRY_QUICKLY = {
    "REELCAST_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8",
    "REELCAST_WEBHOOK_RETRY_BASE": "0.05",
    "REELCAST_WEBHOOK_RETRY_MAX": "0.2",
    "REELCAST_WEBHOOK_MAX_ATTEMPTS": "100000",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(Receiver(fail_first=10**9)) as running:
        yield running


async def test_fifty_pending_deliveries_survive_sigkill_and_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    data_dir = tmp_path / "data"
    # The history and the endpoint are written before the server starts: 50 finished events, all pending.
    store = SqliteJobStore(data_dir / "reelcast.db")
    try:
        registry = WebhookRegistry(data_dir / "webhooks.db")
        allowed = WebhookSettings.from_environ(RETRY_QUICKLY)
        endpoint = await create_endpoint(
            registry, store, allowed, "local", receiver.url, EventFilter(everything=True)
        )
        receiver.secrets = [endpoint.secret]
        await run_job(store, await create_job(store, "job-pending", owner="local"), progress_steps=47)
    finally:
        await store.close()
    env = {"REELCAST_DISABLED_PLUGINS": ALL_BUILTINS, **RETRY_QUICKLY}
    server = ServerProcess(data_dir, env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    try:
        server.start()
        await wait_until(lambda: receiver.attempts >= 3)  # delivering, and failing: nothing delivered yet
        server.kill()
        assert receiver.deliveries == []
        receiver.fail_first = 0
        server.start()
        await wait_until(lambda: len(receiver.deduplicated()) == 50)
    finally:
        server.stop()

    assert [p["sequence"] for p in receiver.deduplicated()] == list(range(1, 51))
    assert {p["jobId"] for p in receiver.deduplicated()} == {"job-pending"}
    assert receiver.unverified == 0
