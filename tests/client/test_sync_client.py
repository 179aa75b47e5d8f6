"""Client (blocking grpc, no event loop) against a real server. The server runs on this test's event loop,
so each blocking block runs in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import grpc
import pytest

from reelcast.client import Client, FailedPreconditionError, NotFoundError, is_terminal
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.client.conftest import HANG_TIMEOUT

T = TypeVar("T")


async def blocking(function: Callable[[], T]) -> T:
    return await asyncio.wait_for(asyncio.to_thread(function), HANG_TIMEOUT)


async def test_create_get_list_watch_and_stages(open_server: ReelcastServer) -> None:
    def scenario() -> None:
        with Client(open_server.target) as client:
            created = [client.create_job(topic=f"sync {index}").id for index in range(3)]
            assert client.get_job(created[0]).spec.brief.topic == "sync 0"
            assert [job.id for job in client.list_jobs(page_size=1)] == list(reversed(created))
            events = list(client.watch_job(created[-1]))
            assert [event.sequence for event in events] == list(range(1, len(events) + 1))
            assert is_terminal(events[-1])
            assert list(client.watch_job(created[-1], after_sequence=3)) == events[3:]
            assert client.list_stages()[0].name == "script"

    await blocking(scenario)


async def test_watch_jobs_follows_a_job_created_after_it_opened_and_resumes_from_a_cursor(
    open_server: ReelcastServer,
) -> None:
    def scenario() -> None:
        with Client(open_server.target) as client:
            stream = client.watch_jobs(labels={"team": "sync"})
            start = next(stream)
            assert not start.HasField("event") and start.cursor
            client.create_job(topic="unlabelled")
            job_id = client.create_job(topic="sync all", labels={"team": "sync"}).id
            responses = []
            for response in stream:
                responses.append(response)
                if is_terminal(response.event):
                    break
            stream.close()
            assert [r.event for r in responses] == list(client.watch_job(job_id))
            resumed = client.watch_jobs(responses[2].cursor, labels="team=sync")
            assert next(resumed).cursor == responses[2].cursor
            assert [next(resumed) for _ in responses[3:]] == responses[3:]
            resumed.close()

    await blocking(scenario)


async def test_cancel_and_typed_errors(open_server: ReelcastServer) -> None:
    def scenario() -> None:
        with Client(open_server.target, correlation_id="sync-client") as client:
            job = client.create_job(topic="Cancel me", correlation_id="sync-create")
            assert job.correlation_id == "sync-create"
            client.cancel_job(job.id)
            assert list(client.watch_job(job.id))[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
            with pytest.raises(FailedPreconditionError) as finished:
                client.cancel_job(job.id)
            assert finished.value.code == "E004-JOB_ALREADY_FINISHED"
            assert finished.value.correlation_id == "sync-client"
            with pytest.raises(NotFoundError) as missing:
                client.get_job("nope", correlation_id="sync-get")
            assert missing.value.status == grpc.StatusCode.NOT_FOUND
            assert missing.value.correlation_id == "sync-get"
            assert missing.value.remediation

    await blocking(scenario)


async def test_breaking_out_of_a_watch_cancels_its_stream(open_server: ReelcastServer) -> None:
    def scenario() -> int:
        with Client(open_server.target) as client:
            job = client.create_job(topic="Left early")
            watch = client.watch_job(job.id)
            first = next(watch)
            watch.close()
            return first.sequence

    assert await blocking(scenario) == 1


async def test_a_script_under_review_is_edited_and_approved_through_the_client(settings: Settings) -> None:
    from reelcast.client import AbortedError
    from reelcast.plugins.builtin import script

    # The built-in script stage alone: a real script.json for the review to show, and nothing to render.
    server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
    server.host.register(script, "script")
    await server.start()

    def scenario() -> None:
        with Client(server.target) as client:
            job = client.create_job(topic="Review me", review_script=True)
            for event in client.watch_job(job.id):
                if event.job_status == job_pb2.JOB_STATUS_AWAITING_REVIEW:
                    break
            waiting = client.get_job(job.id)
            assert waiting.review.revision == 1 and waiting.review.scenes
            scenes = [{"title": "One", "narration": "Edited through the client."}]
            edited = client.update_job_script(job.id, scenes, expected_revision=1)
            assert edited.review.revision == 2
            assert [scene.narration for scene in edited.review.scenes] == ["Edited through the client."]
            with pytest.raises(AbortedError) as stale:
                client.update_job_script(job.id, scenes, expected_revision=1)
            assert stale.value.code == "E016-REVIEW_REVISION_STALE"
            approved = client.approve_job(job.id)
            assert approved.status == job_pb2.JOB_STATUS_QUEUED and approved.review.approved
            with pytest.raises(FailedPreconditionError) as not_waiting:
                client.approve_job(job.id)
            assert not_waiting.value.code == "E015-JOB_NOT_AWAITING_REVIEW"
            assert list(client.watch_job(job.id))[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED

    try:
        await blocking(scenario)
    finally:
        await server.stop(grace=0.5)
