"""Webhook deliveries to a real receiver on loopback, each verified by the ``standardwebhooks`` package:
order, exactly-once after deduplication, retries with backoff, restarts, replay and secret rotation
(docs/webhooks.md)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.webhooks.endpoints import EventFilter
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.registration import create_endpoint, rotate_secret
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhooks.conftest import create_job, run_job, running_outbox, wait_until

EVERYTHING = EventFilter(everything=True)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_matching_event_arrives_in_order_exactly_once_and_verifies(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver() as everything, running_receiver() as terminal_only:
        endpoint = await create_endpoint(
            registry, store, webhook_settings, "alice", everything.url, EVERYTHING
        )
        terminal = await create_endpoint(
            registry, store, webhook_settings, "alice", terminal_only.url, EventFilter(terminal=True)
        )
        everything.secrets, terminal_only.secrets = [endpoint.secret], [terminal.secret]
        job = await create_job(store, "job-order")
        other = await create_job(store, "job-of-bob", owner="bob")
        outbox = WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)
        async with running_outbox(outbox):
            await run_job(store, job, progress_steps=5)
            await run_job(store, other, progress_steps=1)
            await wait_until(
                lambda: len(everything.deduplicated()) == 8 and len(terminal_only.deliveries) == 1
            )

    payloads = everything.deduplicated()
    assert [p["sequence"] for p in payloads] == list(range(1, 9))
    assert {p["jobId"] for p in payloads} == {"job-order"}  # bob's job is not alice's endpoint's business
    assert [p["event"] for p in payloads] == ["job-status"] * 2 + ["step-progress"] * 5 + ["job-completed"]
    assert payloads[0]["status"] == "Queued" and payloads[1]["status"] == "Running"
    assert payloads[2]["progressPct"] == 20 and payloads[2]["step"] == "Render"
    assert everything.unverified == 0 and terminal_only.unverified == 0
    assert [d.headers["webhook-id"] for d in everything.deliveries[:2]] == ["job-order_1", "job-order_2"]
    assert [(p["jobId"], p["event"]) for p in terminal_only.deduplicated()] == [
        ("job-order", "job-completed")
    ]


async def test_a_receiver_failing_three_times_gets_the_event_after_backoff(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    delivered_before = _sample("reelcast_webhook_attempts_total", outcome="delivered")
    failed_before = _sample("reelcast_webhook_attempts_total", outcome="E093-WEBHOOK_DELIVERY_FAILED")
    with running_receiver(Receiver(fail_first=3)) as receiver:
        endpoint = await create_endpoint(
            registry, store, webhook_settings, "alice", receiver.url, EventFilter(terminal=True)
        )
        receiver.secrets = [endpoint.secret]
        async with running_outbox(WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)):
            await run_job(store, await create_job(store, "job-retried"), progress_steps=1)
            # The receiver records the delivery before it answers: the outbox counts it once the answer is in.
            await wait_until(
                lambda: (
                    len(receiver.deliveries) == 1
                    and _sample("reelcast_webhook_attempts_total", outcome="delivered") > delivered_before
                )
            )

    assert receiver.attempts == 4
    assert _sample("reelcast_webhook_attempts_total", outcome="delivered") - delivered_before == 1
    assert (
        _sample("reelcast_webhook_attempts_total", outcome="E093-WEBHOOK_DELIVERY_FAILED") - failed_before
        == 3
    )
    assert [p["event"] for p in receiver.deduplicated()] == ["job-completed"]
    # Every attempt signs afresh with the same id: the receiver's dedup key is stable across retries.
    assert receiver.deliveries[0].headers["webhook-id"] == "job-retried_4"
    (stored,) = await registry.endpoints("alice")
    assert not stored.failing


async def test_an_endpoint_is_marked_failing_after_its_last_attempt(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver(Receiver(fail_first=1000)) as receiver:
        await create_endpoint(
            registry, store, webhook_settings, "alice", receiver.url, EventFilter(terminal=True)
        )
        async with running_outbox(WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)):
            await run_job(store, await create_job(store, "job-unheard"), progress_steps=1)

            async def marked_failing() -> bool:
                return (await registry.endpoints("alice"))[0].failing

            await wait_until(marked_failing)

    assert receiver.attempts == webhook_settings.max_attempts
    (stored,) = await registry.endpoints("alice")
    assert stored.last_error.startswith("E093-WEBHOOK_DELIVERY_FAILED")
    assert "503" in stored.last_error


async def test_pending_deliveries_survive_a_restart_of_the_outbox(
    store: SqliteJobStore, webhook_settings: WebhookSettings, tmp_path: Path
) -> None:
    registry = WebhookRegistry(tmp_path / "webhooks.db")
    with running_receiver() as receiver:
        endpoint = await create_endpoint(registry, store, webhook_settings, "alice", receiver.url, EVERYTHING)
        receiver.secrets = [endpoint.secret]
        job = await create_job(store, "job-many")
        await run_job(store, job, progress_steps=47)  # 50 events pending before any outbox runs
        async with running_outbox(WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)):
            await wait_until(lambda: _sample("reelcast_webhook_outbox_depth") > 0)  # the backlog, measured
            await wait_until(lambda: len(receiver.deliveries) >= 10)
        stopped_at = len(receiver.deliveries)
        # A new process's view: the registry and store opened afresh from their files.
        reopened_store = SqliteJobStore(tmp_path / "jobs.db")
        reopened = WebhookRegistry(tmp_path / "webhooks.db")
        try:
            async with running_outbox(
                WebhookOutbox(reopened_store, reopened, webhook_settings, poll_seconds=0.05)
            ):
                await wait_until(lambda: len(receiver.deduplicated()) == 50)
        finally:
            await reopened_store.close()

    assert stopped_at < 50, "the first outbox must stop with deliveries still pending"
    assert [p["sequence"] for p in receiver.deduplicated()] == list(range(1, 51))
    assert receiver.unverified == 0


async def test_a_replay_from_sequence_5_redelivers_exactly_5_to_n_with_the_same_ids(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver() as receiver:
        endpoint = await create_endpoint(registry, store, webhook_settings, "alice", receiver.url, EVERYTHING)
        receiver.secrets = [endpoint.secret]
        outbox = WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)
        async with running_outbox(outbox):
            await run_job(store, await create_job(store, "job-replayed"), progress_steps=6)  # sequences 1..9
            await wait_until(lambda: len(receiver.deliveries) == 9)
            replayed = await outbox.replay_job(endpoint, "job-replayed", from_sequence=5)

    assert replayed == 5
    again = receiver.deliveries[9:]
    assert [d.payload["sequence"] for d in again] == [5, 6, 7, 8, 9]
    assert [d.headers["webhook-id"] for d in again] == [f"job-replayed_{n}" for n in range(5, 10)]
    assert len(receiver.deduplicated()) == 9


async def test_a_replay_since_a_time_redelivers_the_endpoints_deliveries_of_every_job_written_since(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    """The events carry the times their writers stamped (the recorder stamps them as it writes): two jobs
    wrote before the cut, one job wrote on both sides of it, and bob's job is not the endpoint's."""
    cut = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    async def write(job: job_pb2.Job, kind: job_pb2.EventKind.ValueType, at: datetime) -> None:
        event = job_pb2.JobProgress(job_id=job.id, kind=kind, job_status=job.status)
        event.time.FromDatetime(at)
        await store.append_event(job, event)

    with running_receiver() as receiver:
        endpoint = await create_endpoint(registry, store, webhook_settings, "alice", receiver.url, EVERYTHING)
        receiver.secrets = [endpoint.secret]
        old = await create_job(store, "job-old")  # its creation event: no time, so the epoch
        both = await create_job(store, "job-both")
        bobs = await create_job(store, "job-bob", owner="bob")
        for job in (old, both, bobs):
            job.status = job_pb2.JOB_STATUS_RUNNING
            await write(job, job_pb2.EVENT_KIND_JOB_STATUS, cut - timedelta(minutes=5))
        await write(both, job_pb2.EVENT_KIND_STEP_PROGRESS, cut)  # at the cut itself: included
        both.status = job_pb2.JOB_STATUS_SUCCEEDED
        await write(both, job_pb2.EVENT_KIND_JOB_COMPLETED, cut + timedelta(minutes=1))
        bobs.status = job_pb2.JOB_STATUS_SUCCEEDED
        await write(bobs, job_pb2.EVENT_KIND_JOB_COMPLETED, cut + timedelta(minutes=1))
        outbox = WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)
        since = await outbox.events_since(endpoint, int(cut.timestamp() * 1e6))
        assert [(e.job_id, e.sequence) for e in since] == [("job-both", 3), ("job-both", 4)]
        assert await outbox.redeliver(endpoint, since) == 2
        await outbox.close()

    assert [d.headers["webhook-id"] for d in receiver.deliveries] == ["job-both_3", "job-both_4"]
    assert [d.payload["event"] for d in receiver.deliveries] == ["step-progress", "job-completed"]
    assert receiver.unverified == 0


async def test_after_a_rotation_both_the_new_and_the_previous_secret_verify(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver() as receiver:
        endpoint = await create_endpoint(
            registry, store, webhook_settings, "alice", receiver.url, EventFilter(terminal=True)
        )
        previous = endpoint.secret
        new = await rotate_secret(registry, endpoint, webhook_settings)
        receiver.secrets = [new, previous]
        async with running_outbox(WebhookOutbox(store, registry, webhook_settings, poll_seconds=0.05)):
            await run_job(store, await create_job(store, "job-rotated"), progress_steps=1)
            await wait_until(lambda: len(receiver.deliveries) == 1)

    (delivery,) = receiver.deliveries
    assert new != previous
    assert delivery.verified_with == [new, previous]  # each secret alone verifies the delivery
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2


async def test_a_failing_mark_from_an_endpoint_read_before_a_rotation_keeps_the_new_secret(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    endpoint = await create_endpoint(
        registry, store, webhook_settings, "alice", "http://127.0.0.1:9/hooks", EventFilter(everything=True)
    )
    stale = dataclasses.replace(endpoint)
    rotated = await rotate_secret(registry, endpoint, webhook_settings)
    await registry.mark(stale.id, True, "E093-WEBHOOK_DELIVERY_FAILED: 503")

    (now,) = await registry.endpoints("alice")
    assert (now.secret, now.previous_secret) == (rotated, stale.secret)
    assert (now.failing, now.last_error) == (True, "E093-WEBHOOK_DELIVERY_FAILED: 503")
