"""A pytest plugin for plugin authors (installed with reelcast through the ``pytest11`` entry point).

Fixtures:

- ``reelcast_plugin_host``: a :class:`PluginHost` with the built-in stages and installed plugins;
- ``register_reelcast_plugin``: ``register_reelcast_plugin(plugin, name)`` registers a plugin object into
  that host for one test and always unregisters it afterwards, even when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reelcast.plugins.host import PluginHost


@pytest.fixture
def reelcast_plugin_host() -> PluginHost:
    return PluginHost.load()


@pytest.fixture
def register_reelcast_plugin(reelcast_plugin_host: PluginHost) -> Iterator[Callable[[object, str], str]]:
    registered: list[str] = []

    def register(plugin: object, name: str) -> str:
        registered.append(reelcast_plugin_host.register(plugin, name))
        return registered[-1]

    try:
        yield register
    finally:
        for name in reversed(registered):
            reelcast_plugin_host.unregister(name)
