"""Browser fixtures: Debian's chromium driven by Playwright against real deployments, each a real gRPC
server (built-in stages) on 127.0.0.1:0 with ``reelcast bridge`` as its own process in front of it, so a test
can kill the bridge and start it again on the same port.

The servers and the browser live for the whole session (one event loop), so the suite starts them once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.launcher import ReelcastProcess

HANG_TIMEOUT = 60.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Only a hang fails by time: every wait of the page (and of `expect`) gives a generous minute.
expect.set_options(timeout=HANG_TIMEOUT * 1000)
# Set to a directory (docs/images) to refresh the README's screenshots from a run.
SCREENSHOT_COPY_DIR = os.environ.get("REELCAST_WEB_SCREENSHOTS")


class BridgeProcess:
    """``reelcast bridge`` as a child process (tests/launcher.py), restartable on the same port."""

    def __init__(self, target: str, log_path: Path, auth: bool) -> None:
        self.target = target
        self.child = ReelcastProcess("bridge", [], log_path, {"REELCAST_AUTH": "required" if auth else "off"})
        self.port = 0

    async def start(self) -> int:
        self.child.args = ["--grpc-target", self.target, "--http-listen", f"127.0.0.1:{self.port}"]
        await asyncio.to_thread(self.child.start, HANG_TIMEOUT)
        self.port = int(self.child.http_base.rsplit(":", 1)[1])
        return self.port

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        process = self.child.process
        if process is not None and process.poll() is None:
            process.send_signal(signum)
            await asyncio.to_thread(process.wait, HANG_TIMEOUT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    server: ReelcastServer
    bridge: BridgeProcess
    api_key: str | None

    @property
    def base_url(self) -> str:
        return self.bridge.base_url


async def _deploy(
    root: Path, name: str, auth: bool, host: PluginHost | None = None, **overrides: object
) -> Deployment:
    """A server (the built-in stages unless ``host`` is given) and its bridge process."""
    settings = Settings(
        data_dir=root / name,
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.05,
        shutdown_grace_seconds=0.5,
        auth_required=auth,
        **overrides,  # type: ignore[arg-type]
    )
    server = ReelcastServer(settings, host=host if host is not None else PluginHost.load())
    await server.start()
    api_key = (await server.keys.acreate("web-tester"))[1] if auth else None
    bridge = BridgeProcess(server.target, root / f"bridge-{name}.log", auth)
    await bridge.start()
    return Deployment(server, bridge, api_key)


async def _undeploy(deployment: Deployment) -> None:
    await deployment.bridge.stop()
    await deployment.server.stop(grace=0.5)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def deployments_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def deployment(deployments_root: Path) -> AsyncIterator[Deployment]:
    """Authentication on, the built-in stages: the page as a user meets it."""
    deployed = await _deploy(deployments_root, "main", auth=True)
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def failing_deployment(deployments_root: Path) -> AsyncIterator[Deployment]:
    """Every render fails: ffmpeg is told to use an encoder that does not exist (configuration, not code)."""
    deployed = await _deploy(
        deployments_root, "failing", auth=True, ffmpeg_extra_args=("-c:v", "no_such_encoder")
    )
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def open_deployment(deployments_root: Path) -> AsyncIterator[Deployment]:
    """Authentication off: the restart test isolates reconnection from logging in."""
    deployed = await _deploy(deployments_root, "open", auth=False)
    try:
        yield deployed
    finally:
        await _undeploy(deployed)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of a run (test artifacts); copied to ``$REELCAST_WEB_SCREENSHOTS`` when it is set."""
    return tmp_path_factory.mktemp("web-artifacts")


async def screenshot(page: Page, artifacts_dir: Path, name: str) -> Path:
    path = artifacts_dir / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if SCREENSHOT_COPY_DIR:
        Path(SCREENSHOT_COPY_DIR).mkdir(parents=True, exist_ok=True)
        (Path(SCREENSHOT_COPY_DIR) / path.name).write_bytes(path.read_bytes())
    return path


@dataclass
class PageSession:
    context: BrowserContext
    page: Page
    errors: list[str]


async def open_page(browser: Browser, base_url: str, width: int = 1280, height: int = 900) -> PageSession:
    """A fresh browser context (no cookies) on the page; uncaught page errors are collected."""
    context = await browser.new_context(
        base_url=base_url, viewport={"width": width, "height": height}, color_scheme="light"
    )
    context.set_default_timeout(HANG_TIMEOUT * 1000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto("/")
    return PageSession(context, page, errors)


async def log_in(page: Page, api_key: str) -> None:
    await page.locator("#login-view").wait_for(state="visible")
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#app-view").wait_for(state="visible")


@pytest_asyncio.fixture(loop_scope="session")
async def logged_in(browser: Browser, deployment: Deployment) -> AsyncIterator[PageSession]:
    """A page on the main deployment, logged in through the login form."""
    assert deployment.api_key is not None
    session = await open_page(browser, deployment.base_url)
    try:
        await log_in(session.page, deployment.api_key)
        yield session
        assert session.errors == [], session.errors
    finally:
        await session.context.close()


# Watches the job view as it changes: every step status transition in the order it appeared, any step row
# shown twice, and any bar that moved backwards (bars are keyed by the job shown and the step).
_RECORDER = """
() => {
  const seen = new Map();
  const statuses = new Map();
  window.__web = { transitions: [], violations: [] };
  const record = () => {
    const jobKey = location.hash;
    const rows = [...document.querySelectorAll('#steps [data-step]')];
    const names = rows.map((row) => row.dataset.step);
    if (new Set(names).size !== names.length) {
      window.__web.violations.push(`step shown twice: ${names.join(',')}`);
    }
    for (const row of rows) {
      const key = `${jobKey} ${row.dataset.step}`;
      if (statuses.get(key) !== row.dataset.status) {
        statuses.set(key, row.dataset.status);
        window.__web.transitions.push([jobKey, row.dataset.step, row.dataset.status]);
      }
    }
    for (const bar of document.querySelectorAll('#job-view progress')) {
      const step = bar.closest('[data-step]');
      const key = `${jobKey} ${step ? step.dataset.step : bar.id}`;
      const before = seen.get(key) ?? 0;
      if (bar.value < before) window.__web.violations.push(`${key} went back from ${before} to ${bar.value}`);
      seen.set(key, Math.max(before, bar.value));
    }
  };
  new MutationObserver(record).observe(document.body,
    { subtree: true, childList: true, attributes: true, characterData: true });
}
"""


async def install_recorder(page: Page) -> None:
    await page.evaluate(_RECORDER)


async def recorded(page: Page) -> tuple[list[list[str]], list[str]]:
    """(transitions as [hash, step, status], violations) seen since :func:`install_recorder`."""
    web = await page.evaluate("window.__web")
    return web["transitions"], web["violations"]


class HeldSnapshot:
    """Holds the page's first ``GET`` of ``url`` (a job's snapshot) with the server's real answer until
    ``release``: a test reproduces an answer that arrives after something newer reached the page.
    ``route`` is the handler for ``page.route``; ``held`` completes once the answer is held."""

    def __init__(self) -> None:
        self.held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._release = asyncio.Event()
        self._delivered = asyncio.Event()

    async def route(self, route: Route) -> None:
        if route.request.method != "GET" or self.held.done():
            await route.continue_()
            return
        response = await route.fetch()  # the server's answer as it is now
        self.held.set_result(None)
        await self._release.wait()
        await route.fulfill(response=response)
        self._delivered.set()

    async def wait_held(self) -> None:
        await asyncio.wait_for(self.held, HANG_TIMEOUT)

    async def deliver(self, page: Page) -> None:
        """Lets the held answer go, and waits until the page has merged it."""
        self._release.set()
        await asyncio.wait_for(self._delivered.wait(), HANG_TIMEOUT)
        # The answer is parsed and merged in the page's next tasks; a timer there runs after them.
        await page.evaluate("() => new Promise((done) => setTimeout(done, 300))")

    def release(self) -> None:
        """For ``finally``: a held answer must not outlive the test."""
        self._release.set()
