"""The form's theme picker in real Chromium: one choice per theme of the server (``GET /api/themes``), each
with its preview image, the default checked; the chosen theme is the job's ``plan.style``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from tests.web.conftest import HANG_TIMEOUT, Deployment, PageSession, screenshot
from tests.web.test_page import api_job, fill_brief

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_form_shows_a_preview_of_each_theme_and_the_job_gets_the_chosen_one(
    logged_in: PageSession, deployment: Deployment, artifacts_dir: Path
) -> None:
    page = logged_in.page
    await page.goto("/#/")
    choices = page.locator("#theme-choices .theme-choice")
    await expect(choices).to_have_count(3)
    await expect(choices.locator(".theme-title")).to_have_text(["Clean", "Bold", "Paper"])
    await expect(page.get_by_label("Clean")).to_be_checked()
    previews = choices.locator("img")
    for index in range(3):
        # Loaded and decoded: a broken image has no natural size.
        await expect(previews.nth(index)).to_have_js_property("naturalWidth", 320)
    assert len({await previews.nth(index).get_attribute("src") for index in range(3)}) == 3

    await fill_brief(page, "How otters eat", 4)
    await page.get_by_label("Paper").check()
    await screenshot(page, artifacts_dir, "themes")
    # Reviewing stops the job after its script: the spec is what is checked, no render is needed.
    await page.get_by_label("Review the script before rendering").check()
    await page.get_by_role("button", name="Create video").click()
    await page.wait_for_url("**/#/jobs/*")
    await expect(page.locator("#job-badge")).to_have_text("AwaitingReview")
    job_id = page.url.rsplit("/", 1)[-1]
    job = await api_job(deployment, job_id)
    assert job["spec"]["plan"]["style"] == "paper"
    assert logged_in.errors == []
    # The waiting job would count against the user's active jobs in the other tests of this deployment.
    headers = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=HANG_TIMEOUT, headers=headers) as http:
        assert (await http.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
