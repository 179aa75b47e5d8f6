"""The long-running commands, ``serve``, ``server``, ``worker`` and ``bridge``: the composition root that
runs the server and the bridge in one process, and their warnings about insecure setups."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
import signal
from typing import Any

from reelcast.cli.output import console, print_result
from reelcast.cli.settings import bridge_available, read_bridge_settings, read_settings
from reelcast.jobs.tracing import configure_tracing
from reelcast.server.announce import Announcer, dialable_host
from reelcast.server.config import Settings
from reelcast.server.logs import adopt_loggers, configure_logging

log = logging.getLogger(__name__)


def run_serving(args: argparse.Namespace) -> int:
    """A long-running command (``SERVING_COMMANDS``), which announces on stdout that it is ready and, once
    it has stopped cleanly, that it stopped (server/announce.py)."""
    announcer = Announcer(args.command, args.announce, print_result)
    if args.command == "worker":
        from reelcast.server.worker import serve_worker

        code = asyncio.run(serve_worker(read_settings(args), announcer))
    elif args.command == "bridge":
        code = asyncio.run(_bridge(args, announcer))
    else:
        code = asyncio.run(_serve(args, announcer))
    announcer.stopped(code)
    return code


async def _serve(args: argparse.Namespace, announcer: Announcer) -> int:
    from reelcast.server.app import ReelcastServer
    from reelcast.server.metrics import MetricsEndpoint
    from reelcast.server.shutdown import install_stop_signals

    settings = read_settings(args)
    with_bridge = not args.no_bridge and bridge_available()
    # Read now, so that a bad bridge variable fails before the server takes any job; the target comes later.
    bridge_settings = read_bridge_settings(args) if with_bridge else None
    configure_logging(settings.log_format, settings.log_level)
    log.info("tracing: %s", configure_tracing())  # docs/observability.md#traces
    # First, so that a bad or busy metrics address fails before the server takes any job.
    metrics = MetricsEndpoint.from_settings(settings)
    server = ReelcastServer(settings)
    try:
        await server.start()
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    # Bounded whatever the backend does; a second signal stops at once (server/shutdown.py).
    stop = install_stop_signals(settings.shutdown_grace_seconds)
    announcer.say(f"reelcast gRPC on {server.target} (data dir {settings.data_dir})")
    if metrics is not None:
        announcer.say(f"reelcast metrics on {metrics.url}")
    listener = None
    http_listen = None
    if bridge_settings is not None:
        from reelcast.bridge.server import bind_http_listener  # type: ignore[import-not-found,unused-ignore]

        bridge_settings = dataclasses.replace(bridge_settings, grpc_target=server.target)
        http_listen = bridge_settings.http_listen
        try:
            # Before the first-start key: a key made for a login URL that can never be shown locks people out.
            listener = bind_http_listener(http_listen)
        except BaseException:
            await server.stop()
            if metrics is not None:
                metrics.close()
            raise
    _warn_insecure_in_logs(settings, http_listen)
    first_key = await _first_start_key(server)
    if first_key and not with_bridge:
        announcer.say(f"first start: created admin key (shown once): {first_key}")
    ready_fields: dict[str, Any] = {
        "grpc": server.target,
        "http": None,
        "metrics": metrics.url if metrics is not None else None,
        "tls": server.tls,
        "dataDir": str(settings.data_dir),
    }
    if first_key:
        ready_fields["adminKey"] = first_key
    if not with_bridge:
        announcer.ready(**ready_fields)
    tasks = []
    if bridge_settings is not None:
        from reelcast.bridge.server import serve_bridge  # type: ignore[import-not-found,unused-ignore]

        scheme = "https" if server.tls else "http"

        def ready(port: int) -> None:
            adopt_loggers()  # uvicorn installed handlers of its own when the bridge started
            host = bridge_settings.http_listen.rsplit(":", 1)[0]
            origin = f"{scheme}://{host}:{port}"  # as listened on, for people
            http = f"{scheme}://{dialable_host(host)}:{port}"  # as a local client dials it, for programs
            announcer.say(f"reelcast web on {origin}/")
            if first_key:
                announcer.say("first start: created an admin key; log in with this URL (shown once):")
                announcer.say(f"    {origin}/login?key={first_key}")
                ready_fields["loginUrl"] = f"{http}/login?key={first_key}"
            announcer.ready(**{**ready_fields, "http": http})

        tasks.append(
            asyncio.create_task(serve_bridge(bridge_settings, stop=stop, on_ready=ready, listener=listener))
        )
    await stop.wait()
    for task in tasks:
        with contextlib.suppress(Exception):
            await task
    await server.stop()
    if metrics is not None:
        metrics.close()
    return 0


async def _first_start_key(server: Any) -> str:
    """On a first start with authentication on (no admin key yet), a new admin key; else ""."""
    if not server.settings.auth_required or await server.keys.ahas_admin():
        return ""
    _record, raw = await server.keys.acreate("admin", admin=True)
    return str(raw)


async def _bridge(args: argparse.Namespace, announcer: Announcer) -> int:
    from reelcast.bridge.server import serve_bridge  # type: ignore[import-not-found,unused-ignore]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    # The server's settings give only the log format and level; the bridge reads its own.
    settings = read_settings(args)
    bridge_settings = read_bridge_settings(args)
    tls = bridge_settings.tls

    def ready(port: int) -> None:
        host = bridge_settings.http_listen.rsplit(":", 1)[0]
        announcer.say(f"reelcast bridge on http://{host}:{port}/ -> {bridge_settings.grpc_target}")
        # uvicorn gave its loggers handlers of their own as it started; route them through ours.
        adopt_loggers()
        http = f"{'https' if tls else 'http'}://{dialable_host(host)}:{port}"
        announcer.ready(grpc=None, http=http, metrics=None, tls=tls, grpcTarget=bridge_settings.grpc_target)

    configure_logging(settings.log_format, settings.log_level)
    log.info("tracing: %s", configure_tracing())  # docs/observability.md#traces
    _warn_insecure_in_logs(
        Settings(
            grpc_listen="127.0.0.1:0",
            tls_cert_file=bridge_settings.tls_cert_file,
            tls_key_file=bridge_settings.tls_key_file,
            auth_required=bridge_settings.auth_required,
            log_format=settings.log_format,
        ),
        bridge_settings.http_listen,
    )
    if bridge_settings.processes == 1:
        await serve_bridge(bridge_settings, stop=stop, on_ready=ready)
        return 0
    from reelcast.bridge.processes import BridgeProcesses  # type: ignore[import-not-found,unused-ignore]

    def all_ready(port: int, pids: list[int]) -> None:
        host = bridge_settings.http_listen.rsplit(":", 1)[0]
        announcer.say(
            f"reelcast bridge on http://{host}:{port}/ -> {bridge_settings.grpc_target}"
            f" ({len(pids)} processes)"
        )
        http = f"{'https' if tls else 'http'}://{dialable_host(host)}:{port}"
        announcer.ready(
            grpc=None,
            http=http,
            metrics=None,
            tls=tls,
            grpcTarget=bridge_settings.grpc_target,
            processes=pids,
        )

    # Each child sets up its logs and traces as this process did (a partial of a module-level function
    # pickles, as the spawned children need).
    prepare = functools.partial(_prepare_bridge_child, settings.log_format, settings.log_level)
    return await BridgeProcesses(bridge_settings, bridge_settings.processes, prepare, adopt_loggers).run(
        stop, all_ready
    )


def _prepare_bridge_child(log_format: str, log_level: str) -> None:
    configure_logging(log_format, log_level)
    configure_tracing()


def _warn_insecure_in_logs(settings: Settings, http_listen: str | None) -> None:
    """The insecure-setup warnings; with JSON logs each becomes a log line, so that stderr stays JSON."""
    if settings.log_format != "json":
        _warn_insecure(settings, http_listen)
        return
    with console.capture() as captured:
        _warn_insecure(settings, http_listen)
    # The console wraps long lines; each warning starts with "warning:".
    text = " ".join(line.strip() for line in captured.get().splitlines() if line.strip())
    for warning in re.split(r" (?=warning: )", text):
        if warning:
            logging.getLogger("reelcast.cli").warning(warning)


def _is_loopback(listen: str) -> bool:
    import ipaddress

    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_insecure(settings: Settings, http_listen: str | None) -> None:
    tls = settings.tls_cert_file is not None and settings.tls_key_file is not None
    for what, listen in (("gRPC", settings.grpc_listen), ("HTTP", http_listen)):
        if listen and not tls and not _is_loopback(listen):
            console.print(
                f"[yellow]warning[/]: {what} listens on {listen} without TLS: keys and data cross the "
                "network in clear text. Pass --tls-cert and --tls-key (docs/security.md)."
            )
    if not settings.auth_required:
        console.print("[yellow]warning[/]: authentication is off (REELCAST_AUTH=off): anyone who can connect")
        console.print("  can create, see and cancel every job.")
