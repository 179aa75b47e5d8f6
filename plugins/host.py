"""The plugin host: loads plugins, collects their stages and resolves replacements by name."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import pluggy

from reelcast.plugins import hookspecs
from reelcast.plugins.stage import Stage

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "reelcast"

# Built-in stages are plugins like any other: each module is registered under its short name, so
# ``REELCAST_DISABLED_PLUGINS=render`` disables the built-in render stage and a third-party stage named
# "render" replaces it.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("script", "reelcast.plugins.builtin.script"),
    ("voice", "reelcast.plugins.builtin.voice"),
    ("visuals", "reelcast.plugins.builtin.visuals"),
    ("render", "reelcast.plugins.builtin.render"),
    ("postprocess", "reelcast.plugins.builtin.postprocess"),
)

T = TypeVar("T")


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """pluggy calls hooks synchronously; a hook or stage that returns an awaitable is awaited here."""
    if inspect.isawaitable(value):
        return await value
    return value


class PluginConflictError(RuntimeError):
    """Two third-party plugins registered a stage with the same name."""


@dataclass(frozen=True)
class InstalledStage:
    """A stage together with the plugin that registered it."""

    stage: Stage
    plugin: str
    plugin_version: str
    builtin: bool


def _builtin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reelcast")
    except PackageNotFoundError:
        return ""


class PluginHost:
    """Owns the pluggy manager and the resolved stage pipeline."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self._builtin_names: set[str] = set()
        self._stages: list[InstalledStage] | None = None

    @classmethod
    def load(cls, disabled: Iterable[str] = (), *, builtins: bool = True) -> PluginHost:
        """The one loading function: block list, entry points, built-ins, then ``check_pending``."""
        host = cls()
        for name in disabled:
            host.manager.set_blocked(name)
        host.manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        if builtins:
            for name, module_name in BUILTIN_PLUGINS:
                if host.manager.is_blocked(name):
                    continue
                host.register_builtin(importlib.import_module(module_name), name)
        host.manager.check_pending()
        return host

    def register_builtin(self, plugin: ModuleType | object, name: str) -> None:
        self.manager.register(plugin, name=name)
        self._builtin_names.add(name)
        self._stages = None

    def register(self, plugin: ModuleType | object, name: str | None = None) -> str:
        """Registers a plugin object at run time (tests, embedding applications). Returns its name."""
        registered = self.manager.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"plugin {name!r} is blocked")
        self.manager.check_pending()
        self._stages = None
        return registered

    def unregister(self, name: str) -> None:
        self.manager.unregister(name=name)
        self._stages = None

    def _plugin_versions(self) -> dict[str, str]:
        versions: dict[str, str] = {}
        for plugin, dist in self.manager.list_plugin_distinfo():
            name = self.manager.get_name(plugin)
            if name is not None:
                versions[name] = dist.version
        return versions

    def stages(self) -> list[InstalledStage]:
        """The resolved pipeline in execution order (by ``order``, then name)."""
        if self._stages is None:
            self._stages = self._collect_stages()
        return list(self._stages)

    def stage(self, name: str) -> InstalledStage | None:
        return next((installed for installed in self.stages() if installed.stage.name == name), None)

    def _collect_stages(self) -> list[InstalledStage]:
        versions = self._plugin_versions()
        builtin_version = _builtin_version()
        chosen: dict[str, InstalledStage] = {}
        # Call each implementation on its own so that every stage is attributed to the plugin that
        # registered it (pluggy's hook caller would merge them).
        for impl in self.manager.hook.register_stages.get_hookimpls():
            plugin_name = impl.plugin_name
            builtin = plugin_name in self._builtin_names
            version = builtin_version if builtin else versions.get(plugin_name, "")

            def register(
                stage: Stage, plugin_name: str = plugin_name, builtin: bool = builtin, version: str = version
            ) -> None:
                if not isinstance(stage, Stage):
                    raise TypeError(f"plugin {plugin_name!r} registered {stage!r}, which is not a Stage")
                candidate = InstalledStage(stage, plugin_name, version, builtin)
                existing = chosen.get(stage.name)
                if existing is None or (existing.builtin and not builtin):
                    chosen[stage.name] = candidate
                elif not existing.builtin and not builtin:
                    raise PluginConflictError(
                        f"plugins {existing.plugin!r} and {plugin_name!r} both register stage {stage.name!r}"
                    )
                else:
                    log.info("stage %r of %r replaced by plugin %r", stage.name, plugin_name, existing.plugin)

            impl.function(register=register)
        return sorted(chosen.values(), key=lambda installed: (installed.stage.order, installed.stage.name))
