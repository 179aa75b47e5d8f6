"""A retried job on the multi-job stream (/api/events?jobs=): a cursor that delivered the job's old end (its
`*` mark) resumes with the retry's job-status and the new attempt's events, as the page needs after Retry."""

from __future__ import annotations

import httpx

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import create_job, read_sse
from tests.stages import PipelinePlugin


async def test_a_cursor_past_a_jobs_end_resumes_with_its_retry_and_new_attempt(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(fail_at="render", fail_times=1), "pipeline")
    job_id = (await create_job(client, "Retried"))["jobId"]
    params = {"jobs": job_id}
    first = (await read_sse(client, "/api/events", params=params)).events
    assert first[-1].event == "job-failed"
    assert (await client.post(f"/api/jobs/{job_id}/retry")).status_code == 202

    resumed = await read_sse(client, "/api/events", params=params, headers={"Last-Event-ID": first[-1].id})

    events = resumed.events
    assert events, "the stream carried nothing after the old end"
    assert (events[0].event, events[0].data["status"], events[0].data["retried"]) == (
        "job-status",
        "Queued",
        True,
    )
    assert events[-1].event == "job-completed"
    # Nothing of the first attempt again: no step of it runs twice on the stream.
    assert [
        e.data["stepName"] for e in events if e.event == "step-status" and e.data["status"] == "Running"
    ] == [
        "render",
        "postprocess",
    ]
    # The cursor of the new end is a finished one again: a reconnect with it carries nothing.
    again = await read_sse(client, "/api/events", params=params, headers={"Last-Event-ID": events[-1].id})
    assert again.events == []
