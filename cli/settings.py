"""The settings a command runs with: the ``REELCAST_*`` environment, then its flags."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from typing import Any

from reelcast.server.config import Settings

# Flags that set a Settings field when given (a command has only some of them).
FLAG_FIELDS = {
    "data_dir": "data_dir",
    "grpc_listen": "grpc_listen",
    "max_concurrent_jobs": "max_concurrent_jobs",
    "concurrency": "max_concurrent_jobs",
    "store": "store_url",
    "tls_cert": "tls_cert_file",
    "tls_key": "tls_key_file",
    "log_format": "log_format",
    "log_level": "log_level",
}
# Switches, and the value they give their field.
SWITCH_FIELDS = {"api_only": ("embedded_worker", False), "insecure_no_auth": ("auth_required", False)}


def read_settings(args: argparse.Namespace) -> Settings:
    """``Settings.from_env``, then the flags of ``args`` that were given."""
    try:
        settings = Settings.from_env()
    except ValueError as invalid:  # a REELCAST_* variable with a value we refuse to guess about
        raise argparse.ArgumentTypeError(str(invalid)) from None
    for flag, name in FLAG_FIELDS.items():
        if getattr(args, flag, None):
            setattr(settings, name, getattr(args, flag))
    for flag, (name, value) in SWITCH_FIELDS.items():
        if getattr(args, flag, False):
            setattr(settings, name, value)
    if getattr(args, "metrics_listen", None) is not None:  # "" is a choice too: no metrics endpoint
        settings.metrics_listen = args.metrics_listen.strip()
    if settings.metrics_listen and hasattr(args, "metrics_listen"):  # commands that serve metrics
        from reelcast.server.metrics import split_listen

        try:
            split_listen(settings.metrics_listen)
        except ValueError as invalid:
            raise argparse.ArgumentTypeError(str(invalid)) from None
    return settings


def bridge_available() -> bool:
    return importlib.util.find_spec("reelcast.bridge.server") is not None


def read_bridge_settings(args: argparse.Namespace, grpc_target: str | None = None) -> Any:
    """The bridge's own settings (bridge/settings.py): its ``REELCAST_*`` variables, then the flags of
    ``serve`` or ``bridge`` (and the gRPC target ``serve`` listens on)."""
    from reelcast.bridge.settings import BridgeSettings  # type: ignore[import-not-found,unused-ignore]

    try:
        settings = BridgeSettings.from_env()
    except ValueError as invalid:  # a REELCAST_* variable with a value we refuse to guess about
        raise argparse.ArgumentTypeError(str(invalid)) from None
    flags: dict[str, Any] = {
        "grpc_target": grpc_target or getattr(args, "grpc_target", None),
        "http_listen": getattr(args, "http_listen", None),
        "tls_cert_file": getattr(args, "tls_cert", None),
        "tls_key_file": getattr(args, "tls_key", None),
        "processes": getattr(args, "processes", None),
    }
    if getattr(args, "allowed_hosts", None) is not None:
        flags["allowed_hosts"] = tuple(name.strip() for name in args.allowed_hosts.split(",") if name.strip())
    if getattr(args, "insecure_no_auth", False):
        flags["auth_required"] = False
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return dataclasses.replace(settings, **given)
    except ValueError as invalid:  # a flag's value refused as the variable's would be
        raise argparse.ArgumentTypeError(str(invalid)) from None
