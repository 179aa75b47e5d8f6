"""The web page in real Chromium against real deployments: log in, create, watch, play, cancel, fail.

Each test drives the page as a user would (labels, roles, clicks, keys) and checks what the page shows; the
server is asked only to confirm facts the page cannot show (the job really ran, really was cancelled).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from reelcast.jobs import errors
from tests.web.conftest import (
    HANG_TIMEOUT,
    Deployment,
    PageSession,
    install_recorder,
    log_in,
    open_page,
    recorded,
    screenshot,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

STEPS = ["script", "voice", "visuals", "render", "postprocess"]
TITLES = ["Script", "Voice", "Visuals", "Rendering", "Postprocessing"]


KEY_POINTS = ["Bees collect nectar from flowers.", "In the hive, they dry it into thick honey."]


async def fill_brief(
    page: Page, topic: str, seconds: int, resolution: str = "640x360", key_points: Sequence[str] = KEY_POINTS
) -> None:
    await page.get_by_label("Topic").fill(topic)
    await page.get_by_label("Audience").fill("Curious adults")
    await page.get_by_label("Key points").fill("\n".join(key_points) + "\n\n")
    await page.get_by_label("Tone").fill("Friendly")
    await page.locator("#duration-number").fill(str(seconds))
    await page.get_by_label("Resolution").select_option(resolution)


async def create_from_form(
    page: Page, topic: str, seconds: int, resolution: str = "640x360", key_points: Sequence[str] = KEY_POINTS
) -> str:
    """Fills and submits the brief form; returns the new job's id from the job view's URL."""
    await page.goto("/#/")
    await fill_brief(page, topic, seconds, resolution, key_points)
    await page.get_by_role("button", name="Create video").click()
    await page.wait_for_url("**/#/jobs/*")
    await expect(page.locator("#job-title")).to_have_text(topic)
    return page.url.rsplit("/", 1)[-1]


def step_row(page: Page, name: str) -> Any:
    return page.locator(f'#steps [data-step="{name}"]')


async def api_job(deployment: Deployment, job_id: str) -> dict[str, Any]:
    """The job as the REST API returns it to the same user (what the page cannot show by itself)."""
    headers = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=HANG_TIMEOUT, headers=headers) as http:
        response = await http.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job


async def test_logging_in_with_a_wrong_key_is_refused_and_logging_out_ends_the_session(
    browser: Browser, deployment: Deployment
) -> None:
    assert deployment.api_key is not None
    session = await open_page(browser, deployment.base_url)
    page = session.page
    try:
        await expect(page.locator("#login-view")).to_be_visible()
        await expect(page.locator("#app-view")).to_be_hidden()
        await page.get_by_label("API key").fill("rk_not_a_real_key")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-error")).to_contain_text("not accepted")
        await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")

        await page.get_by_label("API key").fill(deployment.api_key)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#app-view")).to_be_visible()
        cookies = await session.context.cookies()
        session_cookie = next(c for c in cookies if c["name"] == "reelcast_session")
        assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"

        await page.reload()  # the cookie alone keeps the page logged in
        await expect(page.locator("#app-view")).to_be_visible()
        await page.get_by_role("button", name="Log out").click()
        await expect(page.locator("#login-view")).to_be_visible()
        cookie = {"reelcast_session": session_cookie["value"]}
        base_url = deployment.base_url
        async with httpx.AsyncClient(base_url=base_url, timeout=HANG_TIMEOUT, cookies=cookie) as http:
            assert (await http.get("/api/jobs")).status_code == 401
        assert session.errors == []
    finally:
        await session.context.close()


async def test_the_form_lists_the_servers_voices_and_shows_field_errors_next_to_their_fields(
    logged_in: PageSession, deployment: Deployment, artifacts_dir: Path
) -> None:
    page = logged_in.page
    # Without key points the page says what they are for; with one, it says only how to write them.
    hint, missing = page.locator("#key-points-hint"), page.locator("#key-points-missing")
    await expect(page.get_by_label("Key points")).to_have_attribute("aria-describedby", "key-points-hint")
    await expect(missing).to_be_visible()
    await expect(missing).to_contain_text("Without key points")
    await page.get_by_label("Key points").fill("Bees dance.")
    await expect(missing).to_be_hidden()
    await expect(hint).to_be_visible()
    await expect(hint).to_contain_text("One fact per line")
    await page.get_by_label("Key points").fill("  \n ")
    await expect(missing).to_be_visible()
    voices = page.get_by_label("Voice")
    await expect(voices.locator("option")).not_to_have_count(1)
    assert await voices.locator('option[value="en-us"]').count() == 1
    joe = voices.locator('option[value="en-us-joe"]')
    await expect(joe).to_have_text("Joe, English (America) (en-us-joe): piper, medium quality")
    await fill_brief(page, "How bees make honey", 45)
    await page.get_by_label("Voice").select_option("en-us")
    await screenshot(page, artifacts_dir, "form")

    # The slider and the number are one setting.
    await page.locator("#duration-range").fill("120")
    await expect(page.locator("#duration-number")).to_have_value("120")
    # Aspect presets change the resolutions offered.
    await page.get_by_label("9:16 portrait").check()
    await expect(page.get_by_label("Resolution").locator("option")).to_have_text(
        ["360 × 640", "720 × 1280", "1080 × 1920"]
    )

    await page.locator("#duration-number").fill("2")
    await page.get_by_label("Topic").fill("")
    await page.get_by_role("button", name="Create video").click()
    duration_field = page.locator(".field:has(#duration-number)")
    duration_error = duration_field.locator('.field-error[data-for="plan.targetDurationSeconds"]')
    await expect(duration_error).to_have_text(re.compile(r"^must be between 3 and \d+$"))
    topic_error = page.locator('.field:has(#topic) .field-error[data-for="brief.topic"]')
    await expect(topic_error).not_to_be_empty()
    await expect(page.locator("#duration-number")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Topic")).to_be_focused()
    assert page.url.endswith("/#/") or "#/jobs/" not in page.url

    # Captions: off by default, or a style (Words, Sentences) that the job gets.
    captions = page.get_by_label("Captions")
    await expect(captions).to_have_value("off")
    await expect(captions.locator("option")).to_have_text(["Off", "Words", "Sentences"])
    await captions.select_option(label="Sentences")
    # Music: the tone chooses by default, or a mood, or none.
    music = page.get_by_label("Music")
    await expect(music).to_have_value("")
    await expect(music.locator("option")).to_have_text(
        ["Follows the tone", "Calm", "Upbeat", "Serious", "No music"]
    )
    await music.select_option(label="No music")

    # Fixed fields lose their errors on the next submit.
    await page.get_by_label("Topic").fill("Short")
    await page.locator("#duration-number").fill("4")
    await page.get_by_role("button", name="Create video").click()
    await page.wait_for_url("**/#/jobs/*")
    await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")
    assert await page.locator("#brief-form .field-error[data-for]").count() == 0
    spec = (await api_job(deployment, page.url.rsplit("/", 1)[-1]))["spec"]
    assert spec["brief"]["aspect"] == "9:16"
    assert (spec["render"]["width"], spec["render"]["height"]) == (360, 640)  # the same size tier as 640x360
    assert spec["voice"]["voiceName"] == "en-us"
    assert spec["render"]["captions"] is True and spec["render"]["captionStyle"] == "sentences"
    assert spec["music"]["mood"] == "none"


async def test_a_10s_job_runs_its_steps_in_order_to_100_and_its_video_plays_and_seeks(
    logged_in: PageSession, deployment: Deployment, artifacts_dir: Path
) -> None:
    page = logged_in.page
    await install_recorder(page)
    job_id = await create_from_form(page, "How bees make honey", 10)
    row = page.locator(f'#jobs-list [data-job-id="{job_id}"]')
    await expect(row).to_be_visible()
    await expect(step_row(page, "render")).to_have_attribute("data-status", "Running")
    await screenshot(page, artifacts_dir, "job-running")
    await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")

    transitions, violations = await recorded(page)
    assert violations == []
    mine = [(step, status) for where, step, status in transitions if where.endswith(job_id)]
    mine = [(step, status) for step, status in mine if status != "Pending"]
    assert mine == [(step, status) for step in STEPS for status in ("Running", "Succeeded")]
    await expect(page.locator("#steps [data-step]")).to_have_count(5)
    await expect(page.locator("#steps .step-title")).to_have_text(TITLES)
    for name in STEPS:
        assert await step_row(page, name).locator("progress").evaluate("bar => bar.value") == 100
        await expect(step_row(page, name).locator(".pct")).to_have_text("100%")
        await expect(step_row(page, name).locator(".step-duration")).to_have_text(_SECONDS)
    assert await page.locator("#overall-bar").evaluate("bar => bar.value") == 100
    await expect(row.locator(".badge")).to_have_text("Succeeded")

    job = await api_job(deployment, job_id)
    assert job["spec"]["brief"]["keyPoints"] == KEY_POINTS  # one per line, blank lines dropped
    output = job["output"]
    video = page.locator("#job-video")
    await expect(video).to_have_attribute("poster", output["thumbnailUrl"])
    await expect(video).to_have_attribute("src", output["videoUrl"])
    await expect(page.get_by_role("link", name="Download")).to_have_attribute("href", output["videoUrl"])
    await expect(page.locator("#file-size")).to_have_text(_SIZE)
    await video.evaluate("v => v.readyState >= 1 || new Promise(r => v.onloadedmetadata = r)")
    duration = await video.evaluate("v => v.duration")
    assert 5 < duration < 20
    await video.evaluate("v => { v.muted = true; return v.play(); }")
    await page.wait_for_function("() => document.getElementById('job-video').currentTime > 0.3")
    await video.evaluate("v => v.pause()")
    target = duration * 0.8
    position = await video.evaluate(
        """(v, target) => new Promise((resolve) => {
            v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
            v.currentTime = target;
        })""",
        target,
    )
    assert abs(position - target) < 0.1
    await screenshot(page, artifacts_dir, "job-finished")

    download = await page.request.get(output["videoUrl"])
    body = await download.body()
    assert len(body) == output["sizeBytes"] and body[4:8] == b"ftyp"


_SECONDS = re.compile(r"^\d+(\.\d)? s$")
_SIZE = re.compile(r"^\d+(\.\d)? (KB|MB)$")


async def test_cancelling_a_second_job_during_rendering_shows_it_cancelled(
    logged_in: PageSession, deployment: Deployment
) -> None:
    page = logged_in.page
    await install_recorder(page)
    job_id = await create_from_form(page, "A long walk through the Alps", 60, resolution="1920x1080")
    await expect(step_row(page, "render")).to_have_attribute("data-status", "Running")
    await page.get_by_role("button", name="Cancel").click()

    await expect(page.locator("#job-badge")).to_have_text("Cancelled")
    await expect(page.locator(f'#jobs-list [data-job-id="{job_id}"] .badge')).to_have_text("Cancelled")
    await expect(page.locator("#failure-summary-text")).to_have_text("The job was cancelled.")
    await expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    await expect(step_row(page, "render")).to_have_attribute("data-status", "Cancelled")
    await expect(step_row(page, "postprocess")).to_have_attribute("data-status", "Skipped")
    assert not await page.locator("#failure-modal").evaluate("d => d.open")  # a cancel is no failure
    _, violations = await recorded(page)
    assert violations == []

    job = await api_job(deployment, job_id)
    assert job["cancelled"] is True
    assert job["errors"][0]["code"] == errors.CANCELLED.code
    assert job["output"] is None


async def test_a_failed_render_opens_the_modal_with_the_code_remediation_stderr_and_correlation_id(
    browser: Browser, failing_deployment: Deployment, artifacts_dir: Path
) -> None:
    assert failing_deployment.api_key is not None
    session = await open_page(browser, failing_deployment.base_url)
    page = session.page
    try:
        await session.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await log_in(page, failing_deployment.api_key)
        job_id = await create_from_form(page, "Volcanoes", 10)
        modal = page.get_by_role("dialog", name="The job failed")
        await expect(modal).to_be_visible()
        await expect(modal.locator("#failure-code")).to_have_text(errors.FFMPEG_RUNTIME.code)
        await expect(modal.locator("#failure-remediation")).to_have_text(errors.FFMPEG_RUNTIME.remediation)
        await expect(modal.locator("#failure-message")).not_to_be_empty()
        await expect(modal.locator("#failure-actions li")).not_to_have_count(0)
        stderr = modal.locator("#failure-stderr")
        await expect(stderr).to_be_hidden()  # collapsed until asked for
        await modal.get_by_text("FFmpeg output (stderr)").click()
        await expect(stderr).to_contain_text("no_such_encoder")
        await screenshot(page, artifacts_dir, "failure-modal")

        job = await api_job(failing_deployment, job_id)
        await expect(modal.locator("#failure-correlation")).to_have_text(job["correlationId"])
        await modal.get_by_role("button", name="Copy correlation id").click()
        await expect(modal.get_by_role("button", name="Copied")).to_be_visible()
        assert await page.evaluate("navigator.clipboard.readText()") == job["correlationId"]
        # The server runs with the SDK (dev extras) and no exporter: its jobs get trace ids all the same.
        assert re.fullmatch(r"[0-9a-f]{32}", job["traceId"]), job["traceId"]
        await expect(modal.locator("#failure-trace")).to_have_text(job["traceId"])

        await page.keyboard.press("Escape")
        await expect(modal).to_be_hidden()
        await expect(page.locator("#job-badge")).to_have_text("Failed")
        await page.get_by_role("button", name="Show details").click()
        await expect(modal).to_be_visible()
        assert session.errors == []
    finally:
        await session.context.close()


async def test_a_captioned_job_plays_with_its_webvtt_captions_as_a_track(
    logged_in: PageSession, deployment: Deployment
) -> None:
    page = logged_in.page
    await page.goto("/#/")
    await fill_brief(page, "Why honey never spoils", 5)
    await page.get_by_label("Captions").select_option(label="Words")
    await page.get_by_role("button", name="Create video").click()
    await page.wait_for_url("**/#/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]
    await expect(page.locator("#job-view")).to_have_attribute("data-status", "Succeeded")

    output = (await api_job(deployment, job_id))["output"]
    track = page.locator("#job-video track")
    await expect(track).to_have_attribute("src", output["webvttUrl"])
    await expect(track).to_have_attribute("kind", "captions")
    # Chromium itself fetches and parses the WebVTT: its cues are the job's word captions.
    cues = await track.evaluate(
        """t => new Promise((resolve, reject) => {
            const done = () => resolve([...t.track.cues].map(c => [c.startTime, c.endTime, c.text]));
            t.addEventListener('load', done, { once: true });
            t.addEventListener('error', () => reject(new Error('track failed to load')), { once: true });
            t.track.mode = 'hidden';
            if (t.readyState === 2) done();
        })"""
    )
    assert len(cues) >= 3
    assert all(1 <= len(text.split()) <= 4 and end > start for start, end, text in cues)
