"""Every hook a reelcast plugin can implement. This module is the plugin authors' reference manual.

Implement a hook with the ``hookimpl`` marker from ``reelcast.plugins`` and expose the module through the
``reelcast`` entry-point group::

    [project.entry-points.reelcast]
    my_plugin = "my_package.reelcast_plugin"

Every hook's signature also appears in docs/plugins.md, and a test checks that it does.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from reelcast.plugins.stage import Stage

PROJECT_NAME = "reelcast"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_stages(register: Callable[[Stage], None]) -> None:
    """Registers pipeline stages by calling ``register(Stage(...))`` once per stage.

    Called once when the plugin host loads, after the block list is applied and every plugin is
    registered. Not ``firstresult``: every plugin is called. The return value is ignored.

    A stage whose ``name`` equals a built-in stage's name replaces the built-in one (for example a plugin
    that registers ``Stage(name="voice", ...)`` swaps the speech engine). Two third-party plugins that
    register the same name are a configuration error, reported when the host loads.
    """
