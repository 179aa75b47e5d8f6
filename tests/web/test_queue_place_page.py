"""The page's job view of a job that waits for the one worker: it says where the job is in line, then that
it runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.web.conftest import HANG_TIMEOUT, Deployment, PageSession, screenshot

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_waiting_job_shows_its_place_in_line_until_it_runs(
    logged_in: PageSession, deployment: Deployment, artifacts_dir: Path
) -> None:
    page = logged_in.page
    headers = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=HANG_TIMEOUT, headers=headers) as http:

        async def create(topic: str, seconds: int) -> str:
            brief: dict[str, Any] = {"topic": topic, "keyPoints": ["Glaciers move slowly downhill."]}
            body = {"brief": brief, "plan": {"targetDurationSeconds": seconds}}
            response = await http.post("/api/jobs", json=body)
            assert response.status_code == 201, response.text
            job_id: str = response.json()["jobId"]
            return job_id

        # A long job holds the deployment's one slot while the second one waits behind it.
        holder = await create("A long walk along a glacier", 60)
        waiting = await create("Glaciers in brief", 3)
        await page.goto(f"/#/jobs/{waiting}")
        await expect(page.locator("#job-badge")).to_have_text("Queued")
        # With stage durations from earlier jobs of its size it also says when it starts.
        await expect(page.locator("#job-eta")).to_have_text(re.compile(r"^next in line(, starts in .+)?$"))
        await screenshot(page, artifacts_dir, "queue-place")
        assert (await http.post(f"/api/jobs/{holder}/cancel")).status_code == 202
        await expect(page.locator("#job-badge")).to_have_text("Running")
        await expect(page.locator("#job-eta")).not_to_contain_text("in line")
        assert (await http.post(f"/api/jobs/{waiting}/cancel")).status_code == 202
        await expect(page.locator("#job-badge")).to_have_text("Cancelled")
