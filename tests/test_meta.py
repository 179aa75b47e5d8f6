"""Tests that keep the plugin API honest (as datasette's do): every hook has a test named after it, and
every fixture of the plugin authoring kit is documented. That every hook's signature is in docs/plugins.md
is checked in tests/test_plugins.py."""

from __future__ import annotations

import ast
from pathlib import Path

from reelcast.plugins import hookspecs, testing

TESTS = Path(__file__).parent
DOCS = TESTS.parent / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [
        name for name, value in vars(hookspecs).items() if callable(value) and hasattr(value, "reelcast_spec")
    ]


def names_of_tests() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def has_test_named_after(hook: str, names: set[str]) -> bool:
    return any(name == f"test_{hook}" or name.startswith(f"test_{hook}_") for name in names)


def test_every_hook_has_a_test_named_after_it() -> None:
    hooks = hook_names()
    names = names_of_tests()
    assert hooks, "no hooks found in reelcast.plugins.hookspecs"
    untested = [hook for hook in hooks if not has_test_named_after(hook, names)]
    assert not untested, f"hooks without a test named test_<hook> in tests/: {untested}"
    # The check itself can fail: a hook nobody wrote a test for is reported.
    assert not has_test_named_after("register_stage", names)


def test_every_kit_fixture_is_documented_in_docs_plugins() -> None:
    fixtures = [
        name
        for name, value in vars(testing).items()
        # pytest has no public "is this a fixture" check; its fixture objects carry this marker.
        if hasattr(value, "_fixture_function_marker")
    ]
    assert {"reelcast_stage", "reelcast_server", "reelcast_plugin_host", "register_reelcast_plugin"} <= set(
        fixtures
    )
    text = DOCS.read_text(encoding="utf-8")
    undocumented = [name for name in fixtures if f"`{name}" not in text]
    assert not undocumented, f"docs/plugins.md does not document {undocumented}"
