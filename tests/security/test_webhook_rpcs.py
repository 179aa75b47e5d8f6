"""The webhook RPCs on a real secured server running real jobs: an owner registers, lists, rotates,
replays and deletes endpoints; another user gets NOT_FOUND for all of them (docs/webhooks.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from reelcast.jobs.v1 import job_service_pb2
from tests.security.conftest import SecuredFactory, bearer, rpc_code
from tests.webhook_receiver import running_receiver
from tests.webhooks.conftest import wait_until


async def test_an_owner_manages_webhooks_and_receives_their_jobs_end_to_end_others_get_not_found(
    start_secured: SecuredFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's allow-list: the receiver is on loopback.
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    secured = await start_secured()
    alice, bob = bearer(secured.keys["alice"]), bearer(secured.keys["bob"])
    stub = secured.stub
    with running_receiver() as receiver:
        created = await stub.CreateWebhook(
            job_service_pb2.CreateWebhookRequest(
                webhook=job_service_pb2.Webhook(url=receiver.url, terminal_only=True)
            ),
            metadata=alice,
        )
        assert created.secret.startswith("whsec_")
        receiver.secrets = [created.secret]
        webhook_id = created.webhook.id
        job = await secured.create_job("alice")
        await secured.finish("alice", job.id)
        await wait_until(lambda: len(receiver.deliveries) == 1)
        (delivery,) = receiver.deliveries
        assert (delivery.payload["jobId"], delivery.payload["event"]) == (job.id, "job-completed")
        assert delivery.payload["status"] == "Succeeded"

        # Bob sees none of it, and cannot tell alice's endpoint from a missing one.
        listed = await stub.ListWebhooks(job_service_pb2.ListWebhooksRequest(), metadata=bob)
        assert list(listed.webhooks) == []
        with pytest.raises(grpc.RpcError) as refused:
            await stub.DeleteWebhook(
                job_service_pb2.DeleteWebhookRequest(webhook_id=webhook_id), metadata=bob
            )
        assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E096-WEBHOOK_NOT_FOUND")
        rotate = job_service_pb2.RotateWebhookSecretRequest(webhook_id=webhook_id)
        with pytest.raises(grpc.RpcError) as refused:
            await stub.RotateWebhookSecret(rotate, metadata=bob)
        assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E096-WEBHOOK_NOT_FOUND")
        with pytest.raises(grpc.RpcError) as refused:
            await stub.ReplayWebhook(
                job_service_pb2.ReplayWebhookRequest(webhook_id=webhook_id, job_id=job.id), metadata=bob
            )
        assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E003-JOB_NOT_FOUND")

        # Alice rotates, then replays: the same event again, same id, verified by the new secret.
        rotated = await stub.RotateWebhookSecret(
            job_service_pb2.RotateWebhookSecretRequest(webhook_id=webhook_id), metadata=alice
        )
        receiver.secrets = [rotated.secret]
        replay = await stub.ReplayWebhook(
            job_service_pb2.ReplayWebhookRequest(webhook_id=webhook_id, job_id=job.id, from_sequence=1),
            metadata=alice,
        )
        assert replay.replayed == 1
        await wait_until(lambda: len(receiver.deliveries) == 2)
        assert receiver.deliveries[1].headers["webhook-id"] == delivery.headers["webhook-id"]
        assert receiver.deliveries[1].verified_with == [rotated.secret]

        # Or the endpoint's deliveries since a time before the job: the same one event again.
        since = job_service_pb2.ReplayWebhookRequest(webhook_id=webhook_id)
        since.since.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
        assert (await stub.ReplayWebhook(since, metadata=alice)).replayed == 1
        await wait_until(lambda: len(receiver.deliveries) == 3)
        assert receiver.deliveries[2].headers["webhook-id"] == delivery.headers["webhook-id"]
        with pytest.raises(grpc.RpcError) as refused:
            await stub.ReplayWebhook(since, metadata=bob)
        assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E096-WEBHOOK_NOT_FOUND")
        both = job_service_pb2.ReplayWebhookRequest()
        both.CopyFrom(since)
        both.job_id = job.id
        for unclear in (both, job_service_pb2.ReplayWebhookRequest(webhook_id=webhook_id)):
            with pytest.raises(grpc.RpcError) as refused:
                await stub.ReplayWebhook(unclear, metadata=alice)
            assert rpc_code(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "E002-INVALID_REQUEST")

        listed = await stub.ListWebhooks(job_service_pb2.ListWebhooksRequest(), metadata=alice)
        assert [(w.id, w.url, w.terminal_only, w.failing) for w in listed.webhooks] == [
            (webhook_id, receiver.url, True, False)
        ]
        await stub.DeleteWebhook(job_service_pb2.DeleteWebhookRequest(webhook_id=webhook_id), metadata=alice)
        listed = await stub.ListWebhooks(job_service_pb2.ListWebhooksRequest(), metadata=alice)
        assert list(listed.webhooks) == []


async def test_creating_a_webhook_to_the_metadata_address_is_refused_with_its_code(
    start_secured: SecuredFactory,
) -> None:
    secured = await start_secured()
    with pytest.raises(grpc.RpcError) as refused:
        await secured.stub.CreateWebhook(
            job_service_pb2.CreateWebhookRequest(
                webhook=job_service_pb2.Webhook(url="http://169.254.169.254/latest/meta-data/")
            ),
            metadata=bearer(secured.keys["alice"]),
        )
    assert rpc_code(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "E091-WEBHOOK_ADDRESS_NOT_ALLOWED")
