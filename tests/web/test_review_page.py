"""The page's script review in real Chromium: the form asks for a review, the job view shows the written
scenes as text areas once the job waits, Save keeps an edit (the next revision), Approve renders it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from reelcast.plugins.builtin.captions import parse_srt
from tests.web.conftest import HANG_TIMEOUT, Deployment, PageSession, screenshot
from tests.web.test_page import api_job, fill_brief

pytestmark = pytest.mark.asyncio(loop_scope="session")

EDITED = "Otters float on their backs and crack shells on their bellies."


async def test_a_reviewed_job_is_edited_saved_and_approved_on_the_page_and_renders_the_edit(
    logged_in: PageSession, deployment: Deployment, artifacts_dir: Path
) -> None:
    page = logged_in.page
    await page.goto("/#/")
    await fill_brief(page, "How otters eat", 4)
    await page.get_by_label("Captions").select_option(label="Sentences")
    await page.get_by_label("Review the script before rendering").check()
    await page.get_by_role("button", name="Create video").click()
    await page.wait_for_url("**/#/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]

    review = page.locator("#script-review")
    await expect(review).to_be_visible()
    await expect(page.locator("#job-badge")).to_have_text("AwaitingReview")
    first = review.locator("textarea").first
    written = await first.input_value()
    assert written and written != EDITED
    await first.fill(EDITED)
    await screenshot(page, artifacts_dir, "review")
    await review.get_by_role("button", name="Save").click()
    await expect(page.locator("#review-message")).to_have_text("Saved (revision 2).")
    await expect(first).to_have_value(EDITED)  # the new revision shows the saved text
    await review.get_by_role("button", name="Approve and render").click()
    await expect(review).to_be_hidden()
    await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")

    job = await api_job(deployment, job_id)
    assert job["review"]["approved"] is True and job["review"]["revision"] == 2
    assert job["review"]["scenes"][0]["narration"] == EDITED
    headers = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=HANG_TIMEOUT, headers=headers) as http:
        srt = (await http.get(f"/api/jobs/{job_id}/subtitles")).text
    spoken = " ".join(" ".join(text.split()) for _, _, text in parse_srt(srt))
    assert EDITED in spoken and " ".join(written.split()) not in spoken
    assert logged_in.errors == []
