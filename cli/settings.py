"""The settings a command runs with: the ``REELCAST_*`` environment, then its flags."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from typing import Any

from reelcast.server.config import Settings


def read_settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as invalid:  # a REELCAST_* variable with a value we refuse to guess about
        raise argparse.ArgumentTypeError(str(invalid)) from None
    if getattr(args, "data_dir", None):
        settings.data_dir = args.data_dir
    if getattr(args, "grpc_listen", None):
        settings.grpc_listen = args.grpc_listen
    if getattr(args, "max_concurrent_jobs", None):
        settings.max_concurrent_jobs = args.max_concurrent_jobs
    if getattr(args, "concurrency", None):
        settings.max_concurrent_jobs = args.concurrency
    if getattr(args, "store", None):
        settings.store_url = args.store
    if getattr(args, "api_only", False):
        settings.embedded_worker = False
    if getattr(args, "tls_cert", None):
        settings.tls_cert_file = args.tls_cert
    if getattr(args, "tls_key", None):
        settings.tls_key_file = args.tls_key
    if getattr(args, "insecure_no_auth", False):
        settings.auth_required = False
    if getattr(args, "metrics_listen", None) is not None:
        settings.metrics_listen = args.metrics_listen.strip()
    if getattr(args, "log_format", None):
        settings.log_format = args.log_format
    if getattr(args, "log_level", None):
        settings.log_level = args.log_level
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
    }
    if getattr(args, "allowed_hosts", None) is not None:
        flags["allowed_hosts"] = tuple(name.strip() for name in args.allowed_hosts.split(",") if name.strip())
    if getattr(args, "insecure_no_auth", False):
        flags["auth_required"] = False
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(settings, **given)
