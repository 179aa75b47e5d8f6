"""The growing preview in real Chromium: a scene-parallel render (built-in stages, 640x360, three segments
rendered one at a time) publishes the part already rendered, the page plays it before the job has ended,
and the player then moves to the final file.

The job is held after its render by a stage of this test's plugin, until the test has seen the preview
play: the point is that the preview plays while the job is unfinished, which a fast machine could otherwise
race past. The stage is registered through the real hook, beside the built-ins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.plugins.host import PluginHost
from tests.web.conftest import (
    HANG_TIMEOUT,
    Deployment,
    _deploy,
    _undeploy,
    log_in,
    open_page,
    screenshot,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

BODY = {
    "brief": {
        "topic": "How bees make honey",
        "keyPoints": ["Bees visit flowers", "Nectar becomes honey", "Honey keeps the hive warm"],
    },
    "plan": {"targetDurationSeconds": 8},
    "render": {"width": 640, "height": 360},
}


class HoldAfterRender:
    """A stage between render and postprocess that waits until ``gate`` exists."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="hold", title="Holding", weight=0.1, order=450, run=self._run))

    async def _run(self, ctx: StageContext) -> dict[str, Any]:
        while not self.gate.exists():
            ctx.report(0.5, "Held by the test")  # a report keeps the stall watchdog away
            await asyncio.sleep(0.1)
        return {}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def previewing(deployments_root: Path) -> AsyncIterator[tuple[Deployment, Path]]:
    gate = deployments_root / "preview-gate"
    host = PluginHost.load()
    host.register(HoldAfterRender(gate), "hold-after-render")
    render = {"segments": 3, "segment_workers": 1, "x264_preset": "ultrafast"}
    deployed = await _deploy(
        deployments_root, "preview", auth=True, host=host, stage_settings={"render": render}
    )
    try:
        yield deployed, gate
    finally:
        gate.touch()
        await _undeploy(deployed)


async def test_the_page_plays_the_growing_preview_before_the_job_ends_then_switches_to_the_final_file(
    browser: Browser, previewing: tuple[Deployment, Path], artifacts_dir: Path
) -> None:
    deployment, gate = previewing
    headers = {"Authorization": f"Bearer {deployment.api_key}"}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=HANG_TIMEOUT, headers=headers) as api:
        created = await api.post("/api/jobs", json=BODY)
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]
        assert deployment.api_key is not None
        session = await open_page(browser, deployment.base_url)
        page = session.page
        await log_in(page, deployment.api_key)
        await page.goto(f"/#/jobs/{job_id}")

        video = page.locator("#job-video")
        await expect(video).to_have_attribute("data-source", "preview")
        await expect(page.locator("#preview-note")).to_be_visible()
        await expect(page.locator("#result-actions")).to_be_hidden()
        await video.evaluate("v => v.readyState >= 1 || new Promise(r => v.onloadedmetadata = r)")
        await video.evaluate("v => { v.muted = true; return v.play(); }")
        await page.wait_for_function("() => document.getElementById('job-video').currentTime > 0.3")
        preview_src = await video.get_attribute("src")
        assert preview_src is not None and f"/api/jobs/{job_id}/preview?revision=" in preview_src
        preview_duration = await video.evaluate("v => v.duration")
        await screenshot(page, artifacts_dir, "job-preview")

        # Played while the job had not ended: the server says so, and so does the page.
        job = (await api.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "Running", job["status"]
        assert job["preview"]["durationSeconds"] < job["preview"]["totalSeconds"]
        assert 0 < preview_duration < job["preview"]["totalSeconds"]
        await expect(page.locator("#job-view")).to_have_attribute("data-status", "Running")

        # The preview's bytes are a real MP4 from the start of the video; an old revision is never mixed in:
        # a revision is served only while it is the latest, so one that the next segment replaced between
        # the two requests is a 404, and the job then names the new one (the render is done in a few).
        preview = await api.get(job["preview"]["videoUrl"])
        for _ in range(10):
            if preview.status_code != 404:
                break
            assert preview.json()["errorCode"] == "E005-ARTIFACT_NOT_FOUND"
            newer = (await api.get(f"/api/jobs/{job_id}")).json()["preview"]
            assert newer["revision"] > job["preview"]["revision"], (newer, job["preview"])
            job["preview"] = newer
            preview = await api.get(newer["videoUrl"])
        assert preview.status_code == 200 and preview.content[4:8] == b"ftyp"
        assert preview.headers["content-type"] == "video/mp4"

        gate.touch()
        await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")
        output = (await api.get(f"/api/jobs/{job_id}")).json()["output"]
        await expect(video).to_have_attribute("src", output["videoUrl"])
        await expect(video).to_have_attribute("data-source", "output")
        await expect(page.locator("#preview-note")).to_be_hidden()
        await expect(page.locator("#result-actions")).to_be_visible()
        await video.evaluate("v => v.readyState >= 1 || new Promise(r => v.onloadedmetadata = r)")
        assert await video.evaluate("v => v.duration") > preview_duration
        # The player went on from where the preview was, playing (it was playing when the file changed).
        await page.wait_for_function(
            "() => { const v = document.getElementById('job-video');"
            " return !v.paused && v.currentTime > 0.3; }"
        )
        finished = (await api.get(f"/api/jobs/{job_id}")).json()
        assert "preview" not in finished
        gone = await api.get(f"/api/jobs/{job_id}/preview")
        assert gone.status_code == 404 and gone.json()["errorCode"] == "E005-ARTIFACT_NOT_FOUND"
        assert session.errors == [], session.errors
        await session.context.close()
