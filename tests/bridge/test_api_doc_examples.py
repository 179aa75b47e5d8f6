"""docs/api.md's example SSE session is what a real run sends: a real job with the built-in stages, through
the real bridge, is compared event by event with the documented blocks. Times, ids, paths and sizes vary
between runs; percents (from the stage weights), messages, fields, statuses and errors do not."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelcast.jobs.resources import number
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.bridge.conftest import HANG_TIMEOUT, BridgeFactory, SseEvent, read_sse

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BODY = {
    "brief": {"topic": "How bees make honey", "audience": "curious kids", "goal": "explain the steps"},
    # Shorter and smaller than the documented run, so that it takes seconds: percents do not depend on it.
    "plan": {"targetDurationSeconds": 5},
    "render": {"width": 640, "height": 360},
}
CORRELATION_ID = "demo-42"
END_STATES = ("Failed", "Cancelled", "Skipped")


@dataclass
class DocEvent:
    id: int
    event: str
    data: dict[str, Any]


def documented_blocks() -> list[list[DocEvent]]:
    """The SSE events of every code block of the "A full example session" section, block by block."""
    text = API_DOC.read_text(encoding="utf-8")
    section = text[text.index("### A full example session") : text.index("### Resume rules")]
    blocks = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.DOTALL):
        events = [
            DocEvent(int(ident), name, json.loads(data))
            for ident, name, data in re.findall(r"^id: (\d+)\nevent: (\S+)\ndata: (.*)$", block, re.MULTILINE)
        ]
        blocks.append(events)
    assert len(blocks) == 2 and all(blocks), "the section has the full session and the cancelled job"
    return blocks


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        x264_preset="ultrafast",
        auth_required=False,
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ReelcastServer]:
    """The built-in stages (the shared fixture's host has none)."""
    instance = ReelcastServer(settings)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=0.5)


async def real_runs(client: httpx.AsyncClient) -> tuple[list[SseEvent], list[SseEvent]]:
    """A job run to its end, and one cancelled once it renders."""
    headers = {"X-Correlation-ID": CORRELATION_ID}
    done = (await client.post("/api/jobs", json=BODY, headers=headers)).json()
    finished = (await read_sse(client, f"/api/jobs/{done['jobId']}/events")).events
    # A longer video, so that the render is still running when the cancel lands, however loaded the machine.
    long_body = {**BODY, "plan": {"targetDurationSeconds": 120}}
    cancelled = (await client.post("/api/jobs", json=long_body, headers=headers)).json()
    url = f"/api/jobs/{cancelled['jobId']}/events"
    async with client.stream("GET", url) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"step":"Rendering","status":"Running"' in line:
                break
    await client.post(f"/api/jobs/{cancelled['jobId']}/cancel")
    return finished, (await read_sse(client, url)).events


def spans(events: list[SseEvent]) -> dict[str, tuple[float, float]]:
    """Each step's overall percent when it started and when it succeeded, by step title."""
    steps = [e for e in events if e.event == "step-status"]
    started = {e.data["step"]: e.data["jobProgressPct"] for e in steps if e.data["status"] == "Running"}
    ended = {e.data["step"]: e.data["jobProgressPct"] for e in steps if e.data["status"] == "Succeeded"}
    return {step: (started[step], ended[step]) for step in started if step in ended}


def titles(events: list[SseEvent]) -> dict[str, str]:
    """Step titles by stage name (``render`` → ``Rendering``)."""
    return {e.data["stepName"]: e.data["step"] for e in events if "step" in e.data}


def _shape(message: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "N", message)


def check_documented_event(
    doc: DocEvent,
    real: list[SseEvent],
    span: dict[str, tuple[float, float]],
    stopped_in: str = "",
) -> None:
    data = doc.data
    same_kind = [e for e in real if e.event == doc.event and e.data.get("step") == data.get("step")]
    if doc.event in ("job-status", "step-status"):
        same_kind = [e for e in same_kind if e.data["status"] == data["status"]]
    assert same_kind, f"the real run sent no {doc.event} like id {doc.id}"
    match = same_kind[0]
    assert data["correlationId"] == CORRELATION_ID
    assert set(data) - {"etaSeconds"} <= set(match.data), f"id {doc.id}: fields a real event lacks"
    if doc.event == "step-progress":
        start, end = span[data["step"]]
        expected = number(start + (end - start) * data["progressPct"] / 100)
        assert data["jobProgressPct"] == pytest.approx(expected, abs=0.01), f"id {doc.id}: overall percent"
        assert _shape(data["message"]) in {_shape(e.data["message"]) for e in same_kind}, f"id {doc.id}"
        return
    if doc.event == "job-failed" or data.get("status") in END_STATES:
        # Where a cancel lands varies from run to run: the end states and the terminal event carry the overall
        # percent of that moment, inside the share of the step that was running.
        if doc.event == "job-failed":
            assert data["errors"] == match.data["errors"]
        assert data["stepName"] == match.data["stepName"]
        start, end = span[stopped_in]
        assert start <= data["jobProgressPct"] <= end, f"id {doc.id}: within its step's share"
    else:
        assert data["jobProgressPct"] == match.data["jobProgressPct"], f"id {doc.id}: overall percent"
    assert data["message"] == match.data["message"], f"id {doc.id}: message"
    if doc.event == "job-completed":
        assert set(data["output"]) == set(match.data["output"])


async def test_the_documented_example_session_is_what_a_real_run_sends(start_bridge: BridgeFactory) -> None:
    session, cancelled_block = documented_blocks()
    async with httpx.AsyncClient(base_url=await start_bridge(), timeout=HANG_TIMEOUT * 3) as client:
        finished, cancelled = await asyncio.wait_for(real_runs(client), HANG_TIMEOUT * 3)
    span = spans(finished)
    assert [doc.id for doc in session] == sorted({doc.id for doc in session}), "ids increase"
    for doc in session:
        check_documented_event(doc, finished, span)
    assert session[-1].event == finished[-1].event == "job-completed"
    # The cancelled job's documented ending is the real run's last events: each unfinished step's end state,
    # then the terminal event.
    ending = cancelled[-len(cancelled_block) :]
    assert [(doc.event, doc.data.get("step"), doc.data["status"]) for doc in cancelled_block] == [
        (event.event, event.data.get("step"), event.data["status"]) for event in ending
    ]
    assert cancelled_block[-1].event == "job-failed"
    stopped_in = titles(finished)[cancelled_block[-1].data["stepName"]]
    for doc in cancelled_block:
        check_documented_event(doc, cancelled, span, stopped_in)
