"""Fixtures of the observability tests: a plugin whose stages log, really installed, and metric scraping."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ALL_BUILTINS

LOGGING_PLUGIN = Path(__file__).parent / "logging_plugin"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="session")
def installed_logging_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/observability/logging_plugin installed (built as a wheel by pip) into a directory of its own."""
    target = tmp_path_factory.mktemp("logging-site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--target", str(target), str(LOGGING_PLUGIN)], check=True)
    return target


def plugin_env(site: Path, **extra: str) -> dict[str, str]:
    """A server environment with only the logging plugin's stages."""
    return {"PYTHONPATH": str(site), "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS, **extra}


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    return samples.get((name, frozenset((labels or {}).items())))


async def scrape_until(url: str, done: Callable[[Samples], bool], timeout: float = 60) -> Samples:
    """Scrapes ``url`` until ``done(samples)`` holds; the last scrape when it never does (the asserts show
    why)."""
    deadline = time.monotonic() + timeout
    samples = await asyncio.to_thread(scrape, url)
    while not done(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        samples = await asyncio.to_thread(scrape, url)
    return samples
