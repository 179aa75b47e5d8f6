"""The page across a bridge restart, and its accessibility: labels, live regions, keyboard, 360 and 1920 px
(the restart runs without authentication: see the open_deployment fixture)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.web.conftest import (
    Deployment,
    PageSession,
    install_recorder,
    open_page,
    recorded,
    screenshot,
)
from tests.web.test_page import STEPS, api_job, create_from_form, step_row

pytestmark = pytest.mark.asyncio(loop_scope="session")

BICYCLE_POINTS = [
    "The first bicycle, the running machine of 1817, had no pedals: riders pushed it along with their feet.",
    "In the 1860s, French makers fixed pedals to the front wheel, and the machine became the velocipede.",
    "Riders called it the boneshaker, because its iron tyres rattled over the cobbled streets of the time.",
    "To go faster, makers grew the front wheel, and the high wheeler of the 1870s stood taller than a man.",
    "A fall from a high wheeler was so common that riders gave it a name: taking a header.",
    "The safety bicycle of 1885 brought back two wheels of the same size and drove the rear one by a chain.",
    "Air-filled tyres, patented by John Dunlop in 1888, made the ride smooth enough for everyday travel.",
    "Within a decade, millions of people rode to work, and the bicycle gave many women a new freedom.",
    "Gears arrived early in the twentieth century, so that riders could climb hills without walking.",
    "After the war, cars took over many roads, and in much of the world the bicycle became a toy.",
    "Mountain bikes, built in California in the 1970s, took riders off the road and onto the trails.",
    "Today, cities build cycle lanes again, because a bicycle is quiet, cheap and takes little space.",
]


async def test_a_bridge_killed_mid_job_shows_reconnecting_then_the_page_ends_right_without_duplicates(
    browser: Browser, open_deployment: Deployment
) -> None:
    session = await open_page(browser, open_deployment.base_url)
    page = session.page
    bridge = open_deployment.bridge
    try:
        await page.locator("#app-view").wait_for(state="visible")
        await install_recorder(page)
        # Enough to say that the job is still rendering when the bridge comes back (the writer says only
        # what the key points give it, so the length comes from them).
        job_id = await create_from_form(page, "The history of the bicycle", 120, key_points=BICYCLE_POINTS)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(step_row(page, "voice")).to_have_attribute("data-status", "Succeeded")

        await bridge.stop(signal.SIGKILL)  # no goodbye: the browser only sees its connection drop
        await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        await expect(page.locator("#connection")).to_contain_text("Reconnecting")
        await asyncio.sleep(0.5)
        await bridge.start()  # the same port: the page's origin
        still_running = (await api_job(open_deployment, job_id))["status"]
        assert still_running == "Running", "the job ended while the bridge was down: nothing to pick up"

        await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")
        transitions, violations = await recorded(page)
        assert violations == []
        await expect(page.locator("#steps [data-step]")).to_have_count(len(STEPS))
        for name in STEPS:
            await expect(step_row(page, name)).to_have_attribute("data-status", "Succeeded")
            assert await step_row(page, name).locator("progress").evaluate("bar => bar.value") == 100
        mine = [(step, status) for where, step, status in transitions if where.endswith(job_id)]
        assert [t for t in mine if t[1] != "Pending"] == [
            (step, status) for step in STEPS for status in ("Running", "Succeeded")
        ]
        # The page follows all its jobs on one stream that stays open: back to live, not left "reconnecting".
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert session.errors == []
    finally:
        await session.context.close()


async def _tab_order(page: Page, start: str, stop: str, limit: int = 40) -> list[str]:
    await page.locator(start).focus()
    seen = [start.lstrip("#")]
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("() => document.activeElement.id || document.activeElement.value")
        seen.append(focused)
        if f"#{focused}" == stop:
            break
    return seen


async def _fits(page: Page, width: int) -> None:
    overflow = await page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow} px wide in a {width} px window"


async def test_every_control_is_labelled_reachable_by_keyboard_and_the_page_fits_360_and_1920_px(
    logged_in: PageSession, artifacts_dir: Path
) -> None:
    page = logged_in.page
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, progress')]
            .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-labelledby')
                    && !el.getAttribute('aria-label') && !el.closest('[hidden]'))
            .map((el) => el.id || el.name)"""
    )
    assert unlabelled == []
    assert await page.locator("#job-live").get_attribute("aria-live") == "polite"

    order = await _tab_order(page, "#topic", "#create-job")
    for control in (
        "topic",
        "audience",
        "tone",
        "duration-range",
        "duration-number",
        "voice",
        "music",
        "16:9",
    ):
        assert control in order, order
    # The theme picker is one radio group: one stop, on the chosen theme ("clean").
    tail = ["resolution", "captions", "clean", "motion", "transition", "review-script", "create-job"]
    assert order[-7:] == tail, order

    # A whole job by keyboard alone: type, Tab to the button, Enter.
    await page.locator("#topic").focus()
    await page.keyboard.type("Keyboard only")
    await page.locator("#duration-number").focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("4")
    await page.locator("#resolution").focus()
    await page.keyboard.press("Home")  # the smallest size
    for _ in tail[1:]:  # Tab from the resolution along the tail of the order, to the button
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/#/jobs/*")
    await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")
    await expect(page.locator("#job-live")).to_have_text("Job succeeded")
    job_link = page.locator("#jobs-list .job-link").first
    await job_link.focus()
    await expect(job_link).to_be_focused()

    for width, height in ((360, 740), (1920, 1080)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.goto("/#/")
        await expect(page.get_by_role("button", name="Create video")).to_be_visible()
        await _fits(page, width)
        await job_link.click()
        await expect(page.locator("#job-view")).to_be_visible()
        await _fits(page, width)
        await expect(page.locator("#job-video")).to_be_visible()
        if width == 360:
            await screenshot(page, artifacts_dir, "job-finished-360px")
