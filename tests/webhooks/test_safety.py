"""Webhooks are safe to point anywhere a user can type: refused addresses (after resolution and on every
redirect), timeouts and a response-size cap (docs/webhooks.md). Names resolve through a patched
``socket.getaddrinfo``: no traffic ever leaves the machine."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.server.storage.embedded.job_store import SqliteJobStore
from reelcast.server.webhooks.delivery import Deliverer
from reelcast.server.webhooks.endpoints import EventFilter
from reelcast.server.webhooks.outbox import WebhookOutbox
from reelcast.server.webhooks.registration import create_endpoint
from reelcast.server.webhooks.registry import WebhookRegistry
from reelcast.server.webhooks.settings import WebhookSettings
from tests.webhook_receiver import Receiver, running_receiver

TERMINAL = EventFilter(terminal=True)
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names → the address they resolve to; other names resolve as usual (only loopback ones are used)."""
    names: dict[str, str] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            return _real_getaddrinfo(names[host], port, *args, **kwargs)
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://100.64.0.1/hooks",
        "http://internal.example.com/hooks",  # a public-looking name that resolves to 10.x
        "http://metadata.example.com/hooks",  # ... or to the metadata address
    ],
)
async def test_an_endpoint_resolving_to_a_private_address_is_refused_by_default(
    store: SqliteJobStore, registry: WebhookRegistry, fake_dns: dict[str, str], url: str
) -> None:
    fake_dns.update({"internal.example.com": "10.0.0.5", "metadata.example.com": "169.254.169.254"})

    with pytest.raises(ReelcastError) as refused:
        await create_endpoint(registry, store, WebhookSettings(), "alice", url, TERMINAL)

    assert refused.value.code == "E091-WEBHOOK_ADDRESS_NOT_ALLOWED"
    assert await registry.endpoints() == []


async def test_an_operator_allows_private_addresses_with_the_setting(
    store: SqliteJobStore, registry: WebhookRegistry
) -> None:
    allowed = WebhookSettings(allow_private=True)
    endpoint = await create_endpoint(registry, store, allowed, "alice", "http://10.1.2.3/hooks", TERMINAL)
    assert [e.id for e in await registry.endpoints("alice")] == [endpoint.id]


async def test_a_url_that_is_not_http_is_refused(store: SqliteJobStore, registry: WebhookRegistry) -> None:
    with pytest.raises(ReelcastError) as refused:
        await create_endpoint(registry, store, WebhookSettings(), "alice", "file:///etc/passwd", TERMINAL)
    assert refused.value.code == "E090-WEBHOOK_URL_INVALID"


async def test_a_public_name_that_redirects_to_the_metadata_address_is_refused_at_the_redirect(
    fake_dns: dict[str, str], webhook_settings: WebhookSettings
) -> None:
    """The operator allows loopback only (the receiver); the redirect's target is checked before any
    connection to it, and refused."""
    with running_receiver(Receiver(redirect_to="http://metadata.example.com/latest/meta-data/")) as receiver:
        fake_dns.update({"hooks.example.com": "127.0.0.1", "metadata.example.com": "169.254.169.254"})
        port = receiver.url.split(":")[2].split("/")[0]
        deliverer = Deliverer(webhook_settings)
        try:
            outcome = await deliverer.attempt(f"http://hooks.example.com:{port}/hooks", b"{}", {})
        finally:
            await deliverer.close()

    assert receiver.attempts == 1  # the first hop was made, the redirect was not followed
    assert outcome.error is not None and outcome.error.code == "E091-WEBHOOK_ADDRESS_NOT_ALLOWED"
    assert "169.254.169.254" in outcome.error.detail


async def test_endless_redirects_stop_at_the_limit(webhook_settings: WebhookSettings) -> None:
    with running_receiver() as receiver:
        receiver.redirect_to = receiver.url  # itself, forever
        deliverer = Deliverer(webhook_settings)
        try:
            outcome = await deliverer.attempt(receiver.url, b"{}", {})
        finally:
            await deliverer.close()

    assert outcome.error is not None and outcome.error.code == "E092-WEBHOOK_TOO_MANY_REDIRECTS"
    assert receiver.attempts == webhook_settings.max_redirects + 1


async def test_a_receiver_that_never_answers_is_cut_at_the_timeout(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver(Receiver(hang_seconds=60)) as receiver:
        endpoint = await create_endpoint(registry, store, webhook_settings, "alice", receiver.url, TERMINAL)
        outbox = WebhookOutbox(store, registry, webhook_settings)
        event = job_pb2.JobProgress(job_id="job-x", sequence=3, kind=job_pb2.EVENT_KIND_JOB_COMPLETED)
        try:
            outcome = await outbox.deliver_once(endpoint, event)
        finally:
            await outbox.close()

    assert outcome.error is not None and outcome.error.code == "E093-WEBHOOK_DELIVERY_FAILED"
    assert "timeout" in outcome.error.detail


async def test_a_receiver_answering_a_huge_body_is_dropped_at_the_cap(
    store: SqliteJobStore, registry: WebhookRegistry, webhook_settings: WebhookSettings
) -> None:
    with running_receiver(Receiver(endless_body=True)) as receiver:
        endpoint = await create_endpoint(registry, store, webhook_settings, "alice", receiver.url, TERMINAL)
        outbox = WebhookOutbox(store, registry, webhook_settings)
        event = job_pb2.JobProgress(job_id="job-x", sequence=3, kind=job_pb2.EVENT_KIND_JOB_COMPLETED)
        try:
            outcome = await outbox.deliver_once(endpoint, event)
        finally:
            await outbox.close()

    assert outcome.error is not None and outcome.error.code == "E094-WEBHOOK_RESPONSE_TOO_LARGE"
    # The receiver could write only what the socket buffers held before the client hung up, not 1 GB.
    assert receiver.body_bytes_sent < 64 * 1024 * 1024


async def test_an_allowed_ipv6_loopback_receiver_gets_the_delivery_with_a_bracketed_host(
    store: SqliteJobStore, registry: WebhookRegistry
) -> None:
    allowed = WebhookSettings(allow_private=True)
    with running_receiver(host="::1") as receiver:
        endpoint = await create_endpoint(registry, store, allowed, "alice", receiver.url, TERMINAL)
        receiver.secrets = [endpoint.secret]
        outbox = WebhookOutbox(store, registry, allowed)
        event = job_pb2.JobProgress(job_id="job-v6", sequence=2, kind=job_pb2.EVENT_KIND_JOB_COMPLETED)
        try:
            outcome = await outbox.deliver_once(endpoint, event)
        finally:
            await outbox.close()

    assert outcome.delivered, outcome.error
    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    assert receiver.host_headers == [f"[::1]:{port}"]
    assert [p["jobId"] for p in receiver.deduplicated()] == ["job-v6"]
