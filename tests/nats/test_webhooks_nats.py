"""Webhooks on the NATS backend with real processes: two API servers and a worker on one nats-server, and a
real receiver verifying every delivery with the ``standardwebhooks`` package (tests/webhook_receiver.py).

The API server caught in the middle of a delivery is SIGKILLed (found by the port its request came from):
the event it never acknowledged goes to the other server once the ack wait lapses, and every event still
arrives, in order per job, once after deduplicating by ``webhook-id``; the two servers never have two
requests of the endpoint in flight at once. The RPCs answer on either server alike (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio

from reelcast.client.aio import AsyncClient
from reelcast.client.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, server, worker
from tests.processes import ALL_BUILTINS
from tests.webhook_receiver import Receiver, running_receiver

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

HANG_TIMEOUT = 120.0
JOBS = 3
ACK_WAIT = "3"  # seconds a killed server holds the endpoint's event before the other one delivers it


def _env(plugin: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.05",
        "REELCAST_AUTH": "off",
        "REELCAST_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8",
        "REELCAST_WEBHOOK_RETRY_BASE": "0.05",
        "REELCAST_WEBHOOK_RETRY_MAX": "0.2",
        "REELCAST_WEBHOOK_ACK_WAIT": ACK_WAIT,
    }


@contextlib.contextmanager
def _running(processes: list[ReelcastProcess]) -> Iterator[None]:
    try:
        for process in processes:
            process.start()
        yield
    finally:
        for process in processes:
            process.stop()


def _socket_inode(port: int) -> str:
    """The inode of the loopback TCP socket whose local port is ``port`` (the sender's side)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return fields[9]
    raise AssertionError(f"no socket with local port {port}")


def _holds_socket(leader: int, inode: str) -> bool:
    """Whether a process of ``leader``'s session (its process group) has the socket ``inode`` open."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(int(entry.name)) != leader:
                continue
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return True
    return False


async def _wait(condition: Callable[[], object]) -> None:
    """Until ``condition`` (a function or a coroutine function) holds. A hang guard, generous because the
    machine is shared: never a timing assertion."""
    async with asyncio.timeout(HANG_TIMEOUT):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def _log(stub: JobServiceAsyncStub, job_id: str) -> list[job_pb2.JobProgress]:
    request = job_service_pb2.WatchJobRequest(job_id=job_id)
    return [event async for event in stub.WatchJob(request) if event.kind != job_pb2.EVENT_KIND_RESYNC]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(Receiver(answer_after_seconds=0.02)) as running:
        yield running


async def test_a_server_killed_mid_delivery_loses_nothing_and_the_other_delivers_in_order(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path, receiver: Receiver
) -> None:
    env = _env(installed_sample_plugin)
    apis = [server(tmp_path, f"api{index}", nats_server.url, env) for index in range(2)]
    with _running([*apis, worker(tmp_path, "worker", nats_server.url, env)]):
        async with AsyncClient(target=apis[0].target) as client:
            created = await client.create_webhook(job_service_pb2.Webhook(url=receiver.url))
        receiver.secrets = [created.secret]
        receiver.hold_attempt = 6  # mid-way through the first job's events
        async with aio.insecure_channel(apis[1].target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job_ids = []
            for index in range(JOBS):
                spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=f"Hooked {index}"))
                job_ids.append((await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))).job.id)
            await _wait(lambda: receiver.held_port)
        inode = _socket_inode(receiver.held_port)
        sender = next(api for api in apis if api.process and _holds_socket(api.process.pid, inode))
        sender.kill()
        survivor = next(api for api in apis if api is not sender)
        receiver.released.set()
        async with aio.insecure_channel(survivor.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            logs = await asyncio.wait_for(asyncio.gather(*(_log(stub, job) for job in job_ids)), HANG_TIMEOUT)
        expected = {f"{event.job_id}_{event.sequence}" for log in logs for event in log}
        await _wait(lambda: expected <= {d.headers["webhook-id"] for d in receiver.deliveries})
        # The ack wait again: a redelivery that should not happen has the time to show.
        await asyncio.sleep(float(ACK_WAIT) * 2)

    assert all(log[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED for log in logs)
    ids = [delivery.headers["webhook-id"] for delivery in receiver.deliveries]
    assert set(ids) == expected
    # Only the event held while its sender was killed came twice: the other server redelivered it.
    assert [i for i in set(ids) if ids.count(i) > 1] == [receiver.held_id]
    assert ids.count(receiver.held_id) == 2
    for job_id, log in zip(job_ids, logs, strict=True):
        arrived = [p["sequence"] for p in receiver.deduplicated() if p["jobId"] == job_id]
        assert arrived == [event.sequence for event in log]
    assert receiver.max_in_flight == 1
    assert receiver.unverified == 0


async def test_the_webhook_rpcs_answer_alike_on_either_api_server(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path, receiver: Receiver
) -> None:
    env = _env(installed_sample_plugin)
    apis = [server(tmp_path, f"api{index}", nats_server.url, env) for index in range(2)]
    with _running([*apis, worker(tmp_path, "worker", nats_server.url, env)]):
        async with AsyncClient(target=apis[0].target) as first, AsyncClient(target=apis[1].target) as second:
            created = await first.create_webhook(
                job_service_pb2.Webhook(url=receiver.url, terminal_only=True, labels={"team": "otters"})
            )
            listed = await second.list_webhooks_page()
            assert [webhook.id for webhook in listed.webhooks] == [created.webhook.id]
            assert listed.webhooks[0].terminal_only and dict(listed.webhooks[0].labels) == {"team": "otters"}

            secret = await second.rotate_webhook_secret(created.webhook.id)
            assert secret != created.secret
            receiver.secrets = [secret]  # the new secret only: both servers sign with it
            job = await first.create_job(
                job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters"), labels={"team": "otters"})
            )
            await first.create_job(job_pb2.JobSpec(brief=job_pb2.Brief(topic="Unlabelled")))
            await _wait(lambda: len(receiver.deliveries) == 1)
            delivered = receiver.deliveries[0]
            assert delivered.payload["jobId"] == job.id and delivered.payload["event"] == "job-completed"

            # Replay from the first event: only the terminal one matches, with its original webhook-id.
            assert await second.replay_webhook(created.webhook.id, job.id, 1) == 1
            await _wait(lambda: len(receiver.deliveries) == 2)
            assert receiver.deliveries[1].headers["webhook-id"] == delivered.headers["webhook-id"]

            await second.delete_webhook(created.webhook.id)
            assert list((await first.list_webhooks_page()).webhooks) == []
            with pytest.raises(ReelcastError) as missing:
                await first.delete_webhook(created.webhook.id)
            assert missing.value.status == grpc.StatusCode.NOT_FOUND
            assert missing.value.code == "E096-WEBHOOK_NOT_FOUND"


async def test_a_slow_receiver_keeps_its_event_past_the_ack_wait_and_a_given_up_one_marks_failing(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path, receiver: Receiver
) -> None:
    env = {
        **_env(installed_sample_plugin),
        "REELCAST_WEBHOOK_ACK_WAIT": "2",
        "REELCAST_WEBHOOK_MAX_ATTEMPTS": "2",
    }
    apis = [server(tmp_path, f"api{index}", nats_server.url, env) for index in range(2)]
    with _running([*apis, worker(tmp_path, "worker", nats_server.url, env)]):
        async with AsyncClient(target=apis[0].target) as first, AsyncClient(target=apis[1].target) as second:
            created = await first.create_webhook(
                job_service_pb2.Webhook(url=receiver.url, terminal_only=True)
            )
            receiver.secrets = [created.secret]
            receiver.hold_attempt = 1
            slow = await first.create_job(job_pb2.JobSpec(brief=job_pb2.Brief(topic="Slow")))
            await _wait(lambda: receiver.held_port)
            # Three ack waits with the request unanswered: the sender renews it, nobody else takes it.
            await asyncio.sleep(6.0)
            receiver.released.set()
            await _wait(lambda: receiver.in_flight == 0 and len(receiver.deliveries) == 1)

            receiver.fail_first = receiver.attempts + 2  # both attempts of the next event fail
            lost = await second.create_job(job_pb2.JobSpec(brief=job_pb2.Brief(topic="Lost")))

            async def failing() -> bool:
                webhooks = (await first.list_webhooks_page()).webhooks
                return bool(webhooks[0].failing)

            await _wait(failing)
            marked = (await second.list_webhooks_page()).webhooks[0]
            assert marked.last_error.startswith("E09")
            # The next event follows (the failing one is not retried for ever) and clears the mark.
            after = await first.create_job(job_pb2.JobSpec(brief=job_pb2.Brief(topic="After")))
            await _wait(lambda: len(receiver.deliveries) == 2)

            async def cleared() -> bool:
                return not await failing()

            await _wait(cleared)

    assert [d.payload["jobId"] for d in receiver.deliveries] == [slow.id, after.id]
    assert lost.id not in {d.payload["jobId"] for d in receiver.deliveries}
    assert receiver.max_in_flight == 1
