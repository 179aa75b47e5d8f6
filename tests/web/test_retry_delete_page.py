"""Retry and Delete on the page, in real Chromium against real deployments (a real server and bridge process).

The stages are the test pipeline (tests/stages.py) registered through the real hooks: the point is the page's
buttons and what it shows afterwards, not the picture. Jobs are created over REST, as the CLI or a script
would; the page is what retries and deletes them. The server is asked only what the page cannot show: that
the job really ran again, and that a deleted job is really gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from reelcast.plugins.host import PluginHost
from tests.stages import PipelinePlugin
from tests.web.conftest import (
    HANG_TIMEOUT,
    Deployment,
    HeldSnapshot,
    PageSession,
    _deploy,
    _undeploy,
    log_in,
    open_page,
    screenshot,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

STEPS = ["script", "voice", "visuals", "render", "postprocess"]


def _host(plugin: PipelinePlugin) -> PluginHost:
    host = PluginHost.load(builtins=False)
    host.register(plugin, "pipeline")
    return host


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def failing_once(deployments_root: Path) -> AsyncIterator[Deployment]:
    """The render of the first job fails (a forced failure); every later run of it succeeds."""
    plugin = PipelinePlugin(fail_at="render", fail_times=1, delay=0.05)
    deployed = await _deploy(deployments_root, "fails-once", auth=True, host=_host(plugin))
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hanging(deployments_root: Path) -> AsyncIterator[Deployment]:
    """Every job stays Running in its voice step until it is cancelled; several run at once."""
    host = _host(PipelinePlugin(hang_at="voice"))
    deployed = await _deploy(deployments_root, "hangs", auth=True, host=host, max_concurrent_jobs=4)
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


def _api(deployment: Deployment) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=deployment.base_url,
        timeout=HANG_TIMEOUT,
        headers={"Authorization": f"Bearer {deployment.api_key}"},
    )


async def _create(deployment: Deployment, topic: str) -> str:
    async with _api(deployment) as api:
        response = await api.post("/api/jobs", json={"brief": {"topic": topic}})
        assert response.status_code == 201, response.text
        job_id: str = response.json()["jobId"]
        return job_id


async def _until_status(deployment: Deployment, job_id: str, status: str) -> dict[str, Any]:
    async with _api(deployment) as api:
        for _ in range(int(HANG_TIMEOUT * 10)):
            job: dict[str, Any] = (await api.get(f"/api/jobs/{job_id}")).json()
            if job["status"] == status:
                return job
            await asyncio.sleep(0.1)
    pytest.fail(f"job {job_id} never became {status}")


async def _page(browser: Browser, deployment: Deployment, job_id: str) -> PageSession:
    assert deployment.api_key is not None
    session = await open_page(browser, deployment.base_url)
    await log_in(session.page, deployment.api_key)
    await session.page.goto(f"/#/jobs/{job_id}")
    return session


async def test_a_failed_job_retried_from_the_page_runs_again_and_the_view_follows_it_to_success(
    browser: Browser, failing_once: Deployment, artifacts_dir: Path
) -> None:
    job_id = await _create(failing_once, "Retried from the page")
    failed = await _until_status(failing_once, job_id, "Failed")
    assert failed["attempt"] == 1
    session = await _page(browser, failing_once, job_id)
    page = session.page
    try:
        await expect(page.locator("#job-badge")).to_have_text("Failed")
        await expect(page.locator('#steps [data-step="render"] .badge')).to_have_text("Failed")
        retry = page.get_by_role("button", name="Retry")
        await expect(retry).to_be_visible()

        await retry.click()

        # Only the stream brings the new attempt's end: the retry's answer was the job Queued again.
        await expect(page.locator("#job-badge")).to_have_text("Succeeded")
        for name in STEPS:
            await expect(page.locator(f'#steps [data-step="{name}"] .badge')).to_have_text("Succeeded")
        await expect(page.locator("#failure-summary")).to_be_hidden()
        await expect(retry).to_be_hidden()
        await expect(page.locator("#overall-pct")).to_have_text("100%")
        # The old attempt's failure is not shown again as a new one.
        assert not await page.locator("#failure-modal").evaluate("d => d.open")
        await screenshot(page, artifacts_dir, "retried-job")
        assert session.errors == [], session.errors
    finally:
        await session.context.close()
    job = await _until_status(failing_once, job_id, "Succeeded")
    assert job["attempt"] == 2


async def test_a_job_cancelled_and_retried_on_the_page_runs_again_on_the_same_live_stream(
    browser: Browser, hanging: Deployment
) -> None:
    """The page saw the job end (its stream's cursor holds that end), then follows the new attempt."""
    job_id = await _create(hanging, "Cancelled, then retried")
    await _until_status(hanging, job_id, "Running")
    session = await _page(browser, hanging, job_id)
    page = session.page
    voice = page.locator('#steps [data-step="voice"] .badge')
    try:
        await expect(voice).to_have_text("Running")
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#job-badge")).to_have_text("Cancelled")
        # The page's one stream follows all its jobs, so it stays live after this one ended.
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")

        await page.get_by_role("button", name="Retry").click()

        # A cancelled job starts over: its voice step runs again, seen live on the stream.
        await expect(page.locator("#job-badge")).to_have_text("Running")
        await expect(voice).to_have_text("Running")
        await expect(page.locator("#connection")).to_have_text("Live")
        await expect(page.locator("#failure-summary")).to_be_hidden()
        cancel = page.get_by_role("button", name="Cancel")
        await expect(cancel).to_be_enabled()
        await cancel.click()  # the new attempt can be cancelled too
        await expect(page.locator("#job-badge")).to_have_text("Cancelled")
        assert session.errors == [], session.errors
    finally:
        await session.context.close()
    job = await _until_status(hanging, job_id, "Failed")
    assert (job["attempt"], job["cancelled"]) == (2, True)


async def test_a_snapshot_of_the_old_attempt_answered_after_the_retry_does_not_bring_its_end_back(
    browser: Browser, hanging: Deployment
) -> None:
    """The page fetches a job's final snapshot when its stream brings the end. A retry clicked before that
    fetch is answered leaves the old attempt's snapshot arriving last: seen in CI, it turned the running new
    attempt back into Cancelled for good. The network holds the real answer back here until the new attempt
    runs."""
    job_id = await _create(hanging, "Stale snapshot after a retry")
    await _until_status(hanging, job_id, "Running")
    session = await _page(browser, hanging, job_id)
    page = session.page
    badge = page.locator("#job-badge")
    snapshot = HeldSnapshot()

    try:
        await expect(badge).to_have_text("Running")
        await page.route(f"**/api/jobs/{job_id}", snapshot.route)
        await page.get_by_role("button", name="Cancel").click()
        await expect(badge).to_have_text("Cancelled")
        await snapshot.wait_held()
        await page.get_by_role("button", name="Retry").click()
        await expect(badge).to_have_text("Running")

        await snapshot.deliver(page)
        await expect(badge).to_have_text("Running")
        await expect(page.locator('#steps [data-step="voice"] .badge')).to_have_text("Running")
        await expect(page.get_by_role("button", name="Retry")).to_be_hidden()
        assert session.errors == [], session.errors
    finally:
        snapshot.release()
        await session.context.close()
    async with _api(hanging) as api:
        response = await api.post(f"/api/jobs/{job_id}/cancel")  # the new attempt was running all along
        assert response.status_code == 202, response.text


async def test_a_running_job_deleted_from_the_page_after_the_confirmation_is_gone_from_list_view_and_server(
    browser: Browser, hanging: Deployment, artifacts_dir: Path
) -> None:
    job_id = await _create(hanging, "Deleted from the page")
    await _until_status(hanging, job_id, "Running")
    kept = await _create(hanging, "Kept job")
    session = await _page(browser, hanging, job_id)
    page = session.page
    row = page.locator(f'#jobs-list [data-job-id="{job_id}"]')
    try:
        await expect(page.locator("#job-badge")).to_have_text("Running")
        await expect(row).to_be_visible()
        delete = page.get_by_role("button", name="Delete", exact=True)
        dialog = page.locator("#delete-dialog")

        # Keeping it changes nothing.
        await delete.click()
        await expect(dialog).to_be_visible()
        await screenshot(page, artifacts_dir, "delete-dialog")
        await dialog.get_by_role("button", name="Keep it").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#job-badge")).to_have_text("Running")

        await delete.click()
        await dialog.get_by_role("button", name="Delete job").click()

        await page.wait_for_url("**/#/")
        await expect(page.locator("#job-view")).to_be_hidden()
        await expect(row).to_have_count(0)
        await expect(page.locator(f'#jobs-list [data-job-id="{kept}"]')).to_be_visible()
        assert session.errors == [], session.errors
    finally:
        await session.context.close()
    async with _api(hanging) as api:
        assert (await api.get(f"/api/jobs/{job_id}")).status_code == 404
        assert (await api.get(f"/api/jobs/{kept}")).status_code == 200
