"""Plugin configuration: each stage declares its own settings, and the server fills them in.

A stage that has knobs declares them as a dataclass with a default for every field and passes the class as
``Stage(settings=...)``. Before the stage runs, the server builds one instance from, lowest first:

1. the field defaults;
2. an older variable name a field declares with ``field(metadata={"env": "REELCAST_..."})`` (how the
   built-ins keep ``REELCAST_X264_PRESET`` and friends working);
3. ``REELCAST_PLUGIN_<STAGE>_<FIELD>`` (the stage name upper-cased, ``-`` as ``_``), e.g.
   ``REELCAST_PLUGIN_INTRO_CARD_SECONDS=3``;
4. values given in code (``Settings(stage_settings={"intro-card": {"seconds": 3}})`` or the test kit).

The stage finds the instance as ``ctx.settings``. It never reads the environment itself: the server hands
this module the variables it read, so the same stage runs unchanged in tests, in a worker or embedded.
Strings are converted to the field's type (``str``, ``int``, ``float``, ``bool``, ``Path``, ``tuple[str,
...]`` split like a shell command line, or ``X | None`` of these); a key the dataclass does not have, or a
value that does not convert, or one the dataclass's ``__post_init__`` refuses (a ``ValueError``), is a
:class:`StageSettingsError` when the server starts, not a surprise mid-job.
"""

from __future__ import annotations

import dataclasses
import shlex
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PREFIX = "REELCAST_PLUGIN_"
# The field metadata key naming an older environment variable for the field.
ENV_ALIAS = "env"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class StageSettingsError(ValueError):
    """A stage's settings could not be built: an unknown key or a value of the wrong type."""


def environment_prefix(stage_name: str) -> str:
    """``REELCAST_PLUGIN_<STAGE>_``: the prefix of a stage's variables."""
    return f"{PREFIX}{stage_name.upper().replace('-', '_')}_"


def environment_values(
    environ: Mapping[str, str], stage_name: str, other_stages: Iterable[str] = ()
) -> dict[str, str]:
    """A stage's ``REELCAST_PLUGIN_<STAGE>_<KEY>`` variables as ``{key: value}`` (keys lower-cased).

    ``other_stages`` are the other installed stage names: a variable belongs to the stage with the longest
    matching prefix, so ``REELCAST_PLUGIN_INTRO_CARD_X`` is not also ``card_x`` of a stage named ``intro``."""
    prefix = environment_prefix(stage_name)
    longer = [environment_prefix(name) for name in other_stages if len(name) > len(stage_name)]
    values: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(prefix) or any(name.startswith(other) for other in longer):
            continue
        values[name[len(prefix) :].lower()] = value
    return values


def build_stage_settings(
    stage_name: str,
    settings_type: type[Any] | None,
    environ: Mapping[str, str] = {},
    overrides: Mapping[str, Any] = {},
    *,
    other_stages: Iterable[str] = (),
) -> Any:
    """The settings object of one stage (``None`` for a stage that declares none and is given none)."""
    from_environment = environment_values(environ, stage_name, other_stages)
    if settings_type is None:
        unknown = sorted({*from_environment, *overrides})
        if unknown:
            raise StageSettingsError(f"stage {stage_name!r} has no settings, but was given {unknown}")
        return None
    if not dataclasses.is_dataclass(settings_type):
        raise StageSettingsError(f"the settings of stage {stage_name!r} must be a dataclass type")
    fields = {field.name: field for field in dataclasses.fields(settings_type)}
    unknown = sorted({*from_environment, *overrides} - set(fields))
    if unknown:
        raise StageSettingsError(
            f"stage {stage_name!r} has no setting {', '.join(map(repr, unknown))}; it has {sorted(fields)}"
        )
    hints = typing.get_type_hints(settings_type)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        alias = field.metadata.get(ENV_ALIAS)
        # An empty variable means "the default", as the built-ins' older variables always did.
        raw: Any = from_environment.get(name) or (environ.get(alias) if alias else None) or None
        raw = overrides.get(name, raw)
        if raw is None:
            continue
        try:
            values[name] = _convert(raw, hints[name])
        except (TypeError, ValueError) as error:
            raise StageSettingsError(f"setting {name!r} of stage {stage_name!r}: {error}") from None
    try:
        return settings_type(**values)
    except (TypeError, ValueError) as error:  # the dataclass's own checks (__post_init__) refused a value
        raise StageSettingsError(f"the settings of stage {stage_name!r}: {error}") from None


def _convert(raw: Any, hint: Any) -> Any:
    """``raw`` as a value of type ``hint``; strings (from the environment) are parsed, others pass through."""
    if not isinstance(raw, str):
        return tuple(raw) if _origin(hint) is tuple and isinstance(raw, list) else raw
    options = typing.get_args(hint) if _origin(hint) in (typing.Union, types.UnionType) else (hint,)
    target = next(option for option in options if option is not type(None))
    if target is bool:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if target in (int, float, str, Path):
        return target(raw)
    if _origin(target) is tuple:
        return tuple(shlex.split(raw))
    raise TypeError(f"unsupported setting type {target!r}")


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint)
