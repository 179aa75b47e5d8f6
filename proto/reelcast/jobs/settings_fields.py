"""Settings read from ``REELCAST_*`` variables, each default written once: a dataclass field names its
variable and how its text becomes the value (:func:`setting`), and :func:`from_environment` reads them all.

The server's ``Settings`` and the bridge's ``BridgeSettings`` both use it, so a variable is parsed and refused
the same way in every process. Pure: the caller passes the environment (``os.environ``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_OFF = frozenset({"0", "off", "false", "no"})


def auth_mode(text: str) -> bool:
    """``required`` or ``off``; anything else is refused rather than guessed, so that a typo can never switch
    authentication off."""
    if text.strip().lower() not in ("required", "off"):
        raise ValueError("must be 'required' or 'off'")
    return text.strip().lower() == "required"


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def switch(text: str) -> bool:
    return text.lower() not in _OFF


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names, blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def text(value: str) -> str:
    return value


def path(value: str) -> Path:
    return Path(value)


def setting(variable: str, parse: Callable[[str], Any], **field_options: Any) -> Any:
    """A dataclass field set by ``variable``: ``default=`` or ``default_factory=`` as for ``field``."""
    return dataclasses.field(metadata={"variable": variable, "parse": parse}, **field_options)


def from_environment(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The values of ``cls``'s fields whose variable is set (and not blank) in ``environ``. A value that
    cannot be used raises ValueError naming the variable."""
    values: dict[str, Any] = {}
    for each in dataclasses.fields(cls):
        variable = each.metadata.get("variable")
        raw = environ.get(variable, "").strip() if variable else ""
        if not raw:
            continue
        try:
            values[each.name] = each.metadata["parse"](raw)
        except ValueError as invalid:
            raise ValueError(f"{variable} {invalid}, got {raw!r}") from None
    return values


def variables(cls: type) -> dict[str, str]:
    """Field name → the variable that sets it, for every field that has one."""
    return {f.name: f.metadata["variable"] for f in dataclasses.fields(cls) if "variable" in f.metadata}
