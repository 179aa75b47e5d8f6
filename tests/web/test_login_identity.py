"""Who is logged in, in real Chromium: the page's header names the user, and a login link on a foreign page
asks before it replaces the session, naming both users."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Route, expect

from tests.web.conftest import Deployment, PageSession, open_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOREIGN_PAGE = "http://foreign.example/"


async def test_the_header_names_the_logged_in_user(logged_in: PageSession) -> None:
    await expect(logged_in.page.locator("#user")).to_be_visible()
    await expect(logged_in.page.locator("#user-name")).to_have_text("web-tester")


async def test_a_login_link_on_a_foreign_page_asks_before_replacing_the_session(
    logged_in: PageSession, deployment: Deployment, browser: Browser
) -> None:
    _record, other_key = await deployment.server.keys.acreate("mallory")
    page = logged_in.page
    link = f"{deployment.base_url}/login?key={other_key}"

    async def foreign(route: Route) -> None:
        await route.fulfill(
            content_type="text/html", body=f'<!doctype html><a id="trap" href="{link}">Free videos</a>'
        )

    await logged_in.context.route(FOREIGN_PAGE, foreign)
    for choice in ("Cancel", "Log in as mallory"):
        await page.goto(FOREIGN_PAGE)
        await page.locator("#trap").click()
        confirmation = page.locator("#login-confirmation")
        await expect(confirmation).to_be_visible()
        await expect(page.locator("#link-user")).to_have_text("mallory")
        await expect(page.locator("#current-user")).to_have_text("web-tester")
        await page.get_by_role("button" if choice.startswith("Log in") else "link", name=choice).click()
        await expect(page.locator("#app-view")).to_be_visible()
        assert page.url.startswith(f"{deployment.base_url}/")
        expected = "web-tester" if choice == "Cancel" else "mallory"
        await expect(page.locator("#user-name")).to_have_text(expected)
    # A browser without a session: the link followed from the foreign page still asks.
    fresh = await open_page(browser, deployment.base_url)
    try:
        await fresh.context.route(FOREIGN_PAGE, foreign)
        await fresh.page.goto(FOREIGN_PAGE)
        await fresh.page.locator("#trap").click()
        await expect(fresh.page.locator("#login-confirmation")).to_be_visible()
        await expect(fresh.page.locator("#current-session")).to_have_text("You are not logged in.")
        assert not [c for c in await fresh.context.cookies() if c["name"] == "reelcast_session"]
        assert fresh.errors == []
    finally:
        await fresh.context.close()
