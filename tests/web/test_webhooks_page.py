"""The Webhooks view in real Chromium against a real deployment (a real server and bridge process): an
endpoint created on the page receives a real job's completion at a real loopback receiver, verified with
``standardwebhooks`` and the secret the page showed; an endpoint whose receiver always fails shows the
Failing mark and its last error; rotate, replay and delete work from the page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, expect

from reelcast.plugins.host import PluginHost
from tests.stages import PipelinePlugin
from tests.web.conftest import HANG_TIMEOUT, Deployment, _deploy, _undeploy, log_in, open_page, screenshot
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhooks.conftest import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Read by the server when it is built: loopback receivers allowed, retries short, failing after 2 attempts.
WEBHOOK_ENV = {
    "REELCAST_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8",
    "REELCAST_WEBHOOK_RETRY_BASE": "0.05",
    "REELCAST_WEBHOOK_RETRY_MAX": "0.1",
    "REELCAST_WEBHOOK_MAX_ATTEMPTS": "2",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hooked(deployments_root: Path) -> AsyncIterator[Deployment]:
    host = PluginHost.load(builtins=False)
    host.register(PipelinePlugin(delay=0.02), "pipeline")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in WEBHOOK_ENV.items():
            patch.setenv(name, value)
        deployed = await _deploy(deployments_root, "webhooks", auth=True, host=host)
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


async def _finished_job(deployment: Deployment, topic: str) -> str:
    async with httpx.AsyncClient(
        base_url=deployment.base_url,
        timeout=HANG_TIMEOUT,
        headers={"Authorization": f"Bearer {deployment.api_key}"},
    ) as api:
        response = await api.post("/api/jobs", json={"brief": {"topic": topic}})
        assert response.status_code == 201, response.text
        job_id: str = response.json()["jobId"]

        async def succeeded() -> bool:
            return bool((await api.get(f"/api/jobs/{job_id}")).json()["status"] == "Succeeded")

        await wait_until(succeeded)
        return job_id


async def _add_endpoint(page: Page, url: str, events: str) -> str:
    """Fills and submits the form; answers the secret the page shows."""
    await page.get_by_label("URL").fill(url)
    await page.get_by_role("radio", name=events).check()
    await page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#webhook-secret-value")
    await expect(page.locator("#webhook-secret")).to_be_visible()
    await expect(secret).not_to_have_text("")
    text = await secret.text_content()
    assert text and text.startswith("whsec_"), text
    return text


def _row(page: Page, url: str) -> Locator:
    return page.locator("#webhooks-list li").filter(has_text=url)


async def test_webhooks_created_on_the_page_deliver_fail_rotate_replay_and_delete(
    browser: Browser, hooked: Deployment, artifacts_dir: Path
) -> None:
    assert hooked.api_key is not None
    session = await open_page(browser, hooked.base_url)
    page = session.page
    with running_receiver() as receiver, running_receiver(Receiver(fail_first=10**9)) as broken:
        try:
            await log_in(page, hooked.api_key)
            await page.get_by_role("link", name="Webhooks").click()
            await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
            await expect(page.locator("#webhooks-empty")).to_be_visible()

            secret = await _add_endpoint(page, receiver.url, "Only each job's end (completed, failed)")
            receiver.secrets = [secret]
            await screenshot(page, artifacts_dir, "webhook-secret-shown")
            await page.get_by_role("button", name="Done").click()
            await expect(page.locator("#webhook-secret")).to_be_hidden()
            await expect(_row(page, receiver.url)).to_contain_text("Terminal events only")

            job_id = await _finished_job(hooked, "Delivered to a webhook")
            await wait_until(lambda: len(receiver.deliveries) == 1)
            (delivery,) = receiver.deliveries
            assert delivery.verified_with == [secret]  # standardwebhooks.Webhook(secret).verify passed
            assert (delivery.payload["jobId"], delivery.payload["event"]) == (job_id, "job-completed")

            # An endpoint whose receiver always fails: after its attempts the page marks it Failing.
            await _add_endpoint(page, broken.url, "Every event")
            await page.get_by_role("button", name="Done").click()
            await _finished_job(hooked, "Never received")
            failing_row = _row(page, broken.url)
            async with asyncio.timeout(HANG_TIMEOUT):
                while not await failing_row.locator(".webhook-failing").count():
                    await page.get_by_role("button", name="Refresh").click()
                    await asyncio.sleep(0.2)
            await expect(failing_row.locator(".webhook-failing")).to_have_text("Failing")
            await expect(failing_row.locator(".webhook-error")).to_contain_text(
                "E093-WEBHOOK_DELIVERY_FAILED"
            )
            await expect(_row(page, receiver.url).locator(".webhook-failing")).to_have_count(0)
            await screenshot(page, artifacts_dir, "webhooks-failing")

            # Rotate: the page shows the new secret, which signs the replay.
            await page.get_by_role("button", name=f"Rotate the secret of {receiver.url}").click()
            await expect(page.locator("#webhook-secret-title")).to_contain_text("New signing secret")
            new_secret = await page.locator("#webhook-secret-value").text_content()
            assert new_secret and new_secret.startswith("whsec_") and new_secret != secret
            receiver.secrets = [new_secret]
            await page.get_by_role("button", name="Done").click()

            # The second job's completion reached this endpoint too (terminal events of every job).
            await wait_until(lambda: len(receiver.deliveries) == 2)
            await page.get_by_role("button", name=f"Replay a job's events to {receiver.url}").click()
            dialog = page.locator("#webhook-replay-dialog")
            await expect(dialog).to_be_visible()
            await dialog.get_by_label("Job id").fill(job_id)
            await dialog.get_by_label("From sequence").fill("1")
            await dialog.get_by_role("button", name="Replay").click()
            await expect(dialog).to_be_hidden()
            await expect(page.locator("#webhooks-live")).to_have_text("Replaying 1 event.")
            await wait_until(lambda: len(receiver.deliveries) == 3)
            assert receiver.deliveries[2].verified_with == [new_secret]
            assert receiver.deliveries[2].headers["webhook-id"] == delivery.headers["webhook-id"]

            # A status filter: the list is enabled by its radio, and the row reads back the choice.
            statuses = page.get_by_label("Statuses", exact=True)
            await expect(statuses).to_be_disabled()
            await page.get_by_label("URL").fill(f"{receiver.url}/statuses")
            await page.get_by_role("radio", name="Only these statuses:").check()
            await statuses.select_option(["Succeeded", "Failed"])
            await page.get_by_label("Labels").fill("team=video, env=prod")
            await page.get_by_role("button", name="Add endpoint").click()
            await expect(page.locator("#webhook-secret")).to_be_visible()
            await page.get_by_role("button", name="Done").click()
            await expect(_row(page, f"{receiver.url}/statuses")).to_contain_text(
                "Statuses: Succeeded, Failed · labels env=prod, team=video"
            )

            # Delete asks first; keeping it keeps it.
            delete = page.get_by_role("button", name=f"Delete the endpoint {broken.url}")
            await delete.click()
            confirm = page.locator("#webhook-delete-dialog")
            await expect(confirm).to_be_visible()
            await confirm.get_by_role("button", name="Keep it").click()
            await expect(failing_row).to_have_count(1)
            await delete.click()
            await confirm.get_by_role("button", name="Delete endpoint").click()
            await expect(failing_row).to_have_count(0)
            await expect(_row(page, f"{receiver.url}/statuses")).to_have_count(1)
            await screenshot(page, artifacts_dir, "webhooks-after-delete")
            assert session.errors == [], session.errors
        finally:
            await session.context.close()
