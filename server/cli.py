"""The ``reelcast`` command: run the server, the bridge, and act as a gRPC client of ``JobService``.

Every failure prints the error code and its remediation, never a traceback. stdout carries only a command's
result (an id, a path, JSON, one line per listed item); progress, messages and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.markup import escape

from reelcast.client import AsyncClient, from_rpc_error, is_terminal
from reelcast.client import ReelcastError as ClientError
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.settings import StageSettingsError
from reelcast.server.announce import ANNOUNCE_FORMATS, Announcer, dialable_host
from reelcast.server.backends import NatsUnreachableError, StoreChoiceError
from reelcast.server.config import Settings, use_private_umask
from reelcast.server.keys import ApiKeys
from reelcast.server.logs import LOG_FORMATS, LOG_LEVELS, adopt_loggers, configure_logging

DEFAULT_TARGET = "127.0.0.1:50051"
# A command, unlike a server, gives up soon when NATS cannot be reached.
KEYS_NATS_TIMEOUT = 10.0
console = Console(stderr=True)


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("resolution must look like 1280x720") from None
    return width, height


def _status_names(values: Sequence[str]) -> list[job_pb2.JobStatus.ValueType]:
    statuses: list[job_pb2.JobStatus.ValueType] = []
    for value in values:
        name = f"JOB_STATUS_{value.upper()}"
        if name not in job_pb2.JobStatus.keys():  # noqa: SIM118 - EnumTypeWrapper is not a dict
            raise argparse.ArgumentTypeError(f"unknown status {value!r}")
        statuses.append(job_pb2.JobStatus.Value(name))
    return statuses


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelcast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server, the runner and the web bridge")
    serve.add_argument("--data-dir", type=Path, help="where jobs live (default: platform data dir)")
    serve.add_argument("--grpc-listen", default=None, help=f"gRPC address (default {DEFAULT_TARGET})")
    serve.add_argument("--http-listen", default=None, help="bridge address (default 127.0.0.1:8080)")
    serve.add_argument("--no-bridge", action="store_true", help="serve gRPC only")
    _allowed_hosts_argument(serve)
    serve.add_argument("--max-concurrent-jobs", type=int, default=None)
    _tls_arguments(serve)
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication (development only; same as REELCAST_AUTH=off)",
    )

    store_help = "sqlite (default) or nats://HOST:PORT[,HOST:PORT...] (REELCAST_STORE)"
    serve.add_argument("--store", default=None, help=store_help)
    _observability_arguments(serve)
    _announce_argument(serve)
    api = commands.add_parser("server", help="run the gRPC API only; workers run the jobs (needs --store)")
    api.add_argument("--data-dir", type=Path, help="local files (default: platform data dir)")
    api.add_argument("--grpc-listen", default=None, help=f"gRPC address (default {DEFAULT_TARGET})")
    api.add_argument("--store", default=None, help=store_help)
    _tls_arguments(api)
    api.add_argument("--insecure-no-auth", action="store_true", help="serve without authentication")
    _observability_arguments(api)
    _announce_argument(api)
    api.set_defaults(no_bridge=True, api_only=True)
    worker = commands.add_parser("worker", help="run jobs from the shared work queue (needs --store)")
    worker.add_argument("--data-dir", type=Path, help="running jobs' work dirs (default: platform data dir)")
    worker.add_argument("--store", default=None, help=store_help)
    worker.add_argument("--concurrency", type=int, default=None, help="jobs run at once (default 1)")
    _observability_arguments(worker)
    _announce_argument(worker)

    bridge = commands.add_parser("bridge", help="run the SSE/REST bridge alone, against a gRPC server")
    bridge.add_argument("--grpc-target", default=None, help=f"the JobService (default {DEFAULT_TARGET})")
    bridge.add_argument("--http-listen", default=None, help="bridge address (default 127.0.0.1:8080)")
    _allowed_hosts_argument(bridge)
    _tls_arguments(bridge)
    # The bridge serves its own /metrics route, so it takes the log flags but no metrics port.
    _log_arguments(bridge)
    _announce_argument(bridge)

    def client(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target", default=os.environ.get("REELCAST_TARGET", DEFAULT_TARGET), help="gRPC server address"
        )
        sub.add_argument("--correlation-id", default=None, help="sent as x-correlation-id")
        sub.add_argument(
            "--api-key",
            default=os.environ.get("REELCAST_API_KEY", ""),
            help="API key (default: REELCAST_API_KEY); create one with `reelcast keys create`",
        )
        sub.add_argument(
            "--tls-ca",
            type=Path,
            default=os.environ.get("REELCAST_TLS_CA") or None,
            help="connect with TLS, trusting this PEM certificate (default: REELCAST_TLS_CA)",
        )

    jobs = commands.add_parser("jobs", help="create, inspect, watch and cancel jobs").add_subparsers(
        dest="jobs_command", required=True
    )
    create = jobs.add_parser("create", help="create a job")
    client(create)
    _spec_arguments(create)
    create.add_argument("--request-id", default="", help="idempotency key")
    create.add_argument("--watch", action="store_true", help="follow the job until it ends")
    get = jobs.add_parser("get", help="print a job as JSON")
    client(get)
    get.add_argument("job_id")
    listing = jobs.add_parser("list", help="list jobs, newest first")
    client(listing)
    listing.add_argument("--status", action="append", default=[], help="queued, running, succeeded...")
    listing.add_argument("--page-size", type=int, default=20)
    listing.add_argument("--page-token", default="")
    listing.add_argument(
        "--json", action="store_true", help="print the page (jobs and nextPageToken) as JSON"
    )
    watch = jobs.add_parser("watch", help="follow a job's progress live")
    client(watch)
    watch.add_argument("job_id")
    watch.add_argument("--after", type=int, default=0, help="resume after this sequence")
    watch.add_argument("--json", action="store_true", help="print each event as a JSON line")
    cancel = jobs.add_parser("cancel", help="cancel a job")
    client(cancel)
    cancel.add_argument("job_id")

    stages = commands.add_parser("stages", help="list the installed stages")
    client(stages)

    gc = commands.add_parser("gc", help="delete finished jobs past their retention period now")
    gc.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
    gc.add_argument(
        "--older-than", type=float, default=None, help="seconds since a job finished (default: retention)"
    )

    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys_create = keys.add_parser("create", help="create a key and print it (shown only this once)")
    keys_create.add_argument("--user", required=True, help="the user the key acts as")
    keys_create.add_argument("--admin", action="store_true", help="the key sees every user's jobs")
    keys_list = keys.add_parser("list", help="list keys (ids and users; secrets are not stored)")
    keys_revoke = keys.add_parser(
        "revoke", help="revoke a key by its id; its open streams end within seconds"
    )
    keys_revoke.add_argument("key_id", help="the 8-digit id that `keys list` shows")
    for sub in (keys_create, keys_list, keys_revoke):
        sub.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
        sub.add_argument("--store", default=None, help=store_help)

    render = commands.add_parser("render", help="render one video end to end on the embedded store")
    _spec_arguments(render)
    render.add_argument("-o", "--output", type=Path, required=True, help="where to write the MP4")
    render.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
    return parser


def _spec_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--topic", required=True)
    sub.add_argument("--audience", default="")
    sub.add_argument("--goal", default="")
    sub.add_argument("--tone", default="")
    sub.add_argument("--language", default="")
    sub.add_argument("--duration", type=float, default=0.0, help="target seconds")
    sub.add_argument("--resolution", type=_resolution, default=None, help="WIDTHxHEIGHT")
    sub.add_argument("--fps", type=int, default=0)
    sub.add_argument("--voice", default="")
    sub.add_argument("--captions", action="store_true")


def _spec(args: argparse.Namespace) -> job_pb2.JobSpec:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic=args.topic, audience=args.audience, goal=args.goal, tone=args.tone, language=args.language
        ),
        plan=job_pb2.Plan(target_duration_seconds=args.duration),
        voice=job_pb2.VoiceSpec(name=args.voice),
        render=job_pb2.RenderSpec(fps=args.fps, captions=args.captions),
    )
    if args.resolution:
        spec.render.width, spec.render.height = args.resolution
    return spec


def _observability_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus /metrics here; port 0 picks one (REELCAST_METRICS_LISTEN; default off)",
    )
    _log_arguments(sub)


def _log_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="log lines on stderr: json (default) or human (REELCAST_LOG_FORMAT)",
    )
    sub.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="lowest level logged (REELCAST_LOG_LEVEL; default INFO)",
    )


def _announce_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--announce",
        choices=ANNOUNCE_FORMATS,
        default="human",
        help="how stdout says the process is ready and where it listens: human lines (default) or json,"
        " one object per event (docs/operations.md#announcements)",
    )


def _tls_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate for gRPC and HTTP")
    sub.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")


def _allowed_hosts_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--allowed-hosts",
        default=None,
        metavar="NAMES",
        help="Host names the bridge answers besides localhost and its listen address, comma separated;"
        " .example.com for subdomains, * for any (REELCAST_ALLOWED_HOSTS)",
    )


def _client(args: argparse.Namespace) -> AsyncClient:
    """The client of a `reelcast jobs ...`/`reelcast stages` command, from its --target, --api-key (or
    REELCAST_API_KEY), --tls-ca and --correlation-id."""
    return AsyncClient(
        args.target,
        api_key=getattr(args, "api_key", "") or "",
        root_certificates=getattr(args, "tls_ca", None),
        correlation_id=getattr(args, "correlation_id", None),
    )


def _print_result(line: str) -> None:
    """One line of the command's result on stdout, as it is: a console would wrap it at 80 columns when stdout
    is a pipe and read brackets in it as markup, and a script must get the id, path or token whole."""
    try:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head -1`): stop quietly, as rich does. stdout then points at devnull, so that
        # the interpreter's last flush of it at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def _print_json(message: Any) -> None:
    _print_result(json_format.MessageToJson(message, preserving_proto_field_name=False))


def _report_rpc_error(error: grpc.RpcError | ClientError) -> int:
    """Prints a failed call as code, message, field violations, remediation and correlation id."""
    failure = error if isinstance(error, ClientError) else from_rpc_error(error)
    if failure.status == grpc.StatusCode.UNAVAILABLE and not failure.code:
        console.print(f"[red]error[/]: cannot reach the reelcast server ({escape(failure.message)})")
        console.print("remediation: start it with `reelcast serve`, or pass --target HOST:PORT")
        return 2
    console.print(f"[red]error {failure.code or failure.status.name}[/]: {escape(failure.message)}")
    for violation in failure.field_violations:
        console.print(f"  {escape(violation.field)}: {escape(violation.description)}")
    if failure.remediation:
        console.print(f"remediation: {escape(failure.remediation)}")
    if failure.correlation_id:
        console.print(f"correlation id: {failure.correlation_id}")
    return 1


async def _follow(client: AsyncClient, job_id: str, after: int, as_json: bool) -> job_pb2.JobProgress | None:
    """Follows a job to its end and returns its completion event, or None once it has reported on stderr why
    the job did not complete. The watch resumes by itself across dropped connections and server restarts."""
    from reelcast.server.progress_display import ProgressDisplay

    # An unknown job gets its error before anything is drawn.
    await client.get_job(job_id)
    events = client.watch_job(job_id, after)
    last: job_pb2.JobProgress | None = None
    if as_json:
        async for event in events:
            _print_result(json_format.MessageToJson(event, indent=None))
            last = event
    else:
        with ProgressDisplay(console) as display:
            async for event in events:
                display.update(event)
                last = event
    if last is None or not is_terminal(last):
        console.print("[yellow]stream ended before the job finished[/]")
        return None
    if last.kind == job_pb2.EVENT_KIND_JOB_COMPLETED:
        return last
    for error in last.errors:
        console.print(
            f"[red]{escape(error.code)}[/]: {escape(error.message)}\nremediation: {escape(error.remediation)}"
        )
    if last.correlation_id:
        console.print(f"correlation id: {last.correlation_id}")
    if last.failure.log_path:
        console.print(f"log: {escape(last.failure.log_path)}")
    return None


async def _follow_to_output(client: AsyncClient, job_id: str, after: int) -> int:
    """Follows a job with the live display; its video's path is the result."""
    completed = await _follow(client, job_id, after, False)
    if completed is None:
        return 1
    _print_result(completed.output.video_path)
    return 0


async def _client_command(args: argparse.Namespace) -> int:
    try:
        client = _client(args)
    except (ValueError, OSError) as invalid:  # a malformed --correlation-id, an unreadable --tls-ca
        console.print(f"[red]error[/]: {escape(str(invalid))}")
        return 2
    try:
        async with client:
            return await _run_client_command(client, args)
    except ClientError as error:
        return _report_rpc_error(error)


async def _run_client_command(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.command == "stages":
        for stage in await client.list_stages():
            _print_result(
                f"{stage.order:>5}  {stage.name:<14} {stage.title:<16} weight {stage.weight:g}  "
                f"{stage.plugin} {stage.plugin_version}".rstrip()
            )
        return 0
    command = args.jobs_command
    if command == "create":
        created = await client.create_job(_spec(args), request_id=args.request_id or None)
        _print_result(created.id)
        return await _follow_to_output(client, created.id, 0) if args.watch else 0
    if command == "get":
        _print_json(await client.get_job(args.job_id))
        return 0
    if command == "list":
        listed = await client.list_jobs_page(
            statuses=_status_names(args.status), page_size=args.page_size, page_token=args.page_token
        )
        if args.json:
            _print_json(listed)
            return 0
        for job in listed.jobs:
            status = job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
            _print_result(f"{job.id}  {status:<10} {job.percent:5.1f}%  {job.spec.brief.topic[:60]}")
        if listed.next_page_token:
            # A hint for people, so that each line of stdout is a job; `--json` gives scripts the token.
            console.print(f"next page: --page-token {listed.next_page_token}", soft_wrap=True, markup=False)
        return 0
    if command == "watch":
        if args.json:
            # The events are the result: one JSON line each, and nothing else on stdout.
            return 0 if await _follow(client, args.job_id, args.after, True) is not None else 1
        return await _follow_to_output(client, args.job_id, args.after)
    if command == "cancel":
        cancelled = await client.cancel_job(args.job_id)
        _print_result(f"cancel requested: {cancelled.id}")
        return 0
    raise AssertionError(f"unhandled command {args}")


def _settings(args: argparse.Namespace) -> Settings:
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


def _bridge_available() -> bool:
    return importlib.util.find_spec("reelcast.bridge.server") is not None


def _bridge_settings(args: argparse.Namespace, grpc_target: str | None = None) -> Any:
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
            logging.getLogger("reelcast.server.cli").warning(warning)


async def _serve(args: argparse.Namespace, announcer: Announcer) -> int:
    from reelcast.server.app import ReelcastServer
    from reelcast.server.metrics import MetricsEndpoint
    from reelcast.server.shutdown import install_stop_signals

    settings = _settings(args)
    with_bridge = not args.no_bridge and _bridge_available()
    # Read now, so that a bad bridge variable fails before the server takes any job; the target comes later.
    bridge_settings = _bridge_settings(args) if with_bridge else None
    configure_logging(settings.log_format, settings.log_level)
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


async def _keys(args: argparse.Namespace) -> int:
    """``reelcast keys``: on the embedded SQLite store, or on NATS with ``--store nats://…`` (the keys every
    API server of that deployment checks)."""
    from reelcast.server.backends import nats_connection, parse_store_url
    from reelcast.server.keys import KeyStore

    settings = _settings(args)
    try:
        servers = parse_store_url(settings.store_url)
    except ValueError as invalid:
        console.print(f"[red]error[/]: {invalid}")
        return 2
    if servers is None:
        store = KeyStore(settings.database_path)
        try:
            return await _key_command(store, args)
        finally:
            store.close()
    connection = nats_connection(servers, settings)
    from reelcast.server.nats_keys import NatsKeyStore

    await connection.open(timeout=KEYS_NATS_TIMEOUT)
    try:
        return await _key_command(NatsKeyStore(connection), args)
    finally:
        await connection.close()


async def _key_command(store: ApiKeys, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        try:
            record, raw = await store.acreate(args.user, admin=args.admin)
        except ValueError as invalid:
            console.print(f"[red]error[/]: {invalid}")
            return 2
        console.print(f"created key {record.id} for {record.user}{' (admin)' if record.admin else ''}")
        console.print("it is shown only now; store it safely:")
        _print_result(raw)
        return 0
    if args.keys_command == "list":
        for key in await store.alist():
            flags = " ".join(f for f in ("admin" if key.admin else "", "revoked" if key.revoked else "") if f)
            _print_result(f"{key.id}  {key.user:<24} {flags}".rstrip())
        return 0
    if await store.arevoke(args.key_id):
        _print_result(f"revoked {args.key_id}")
        return 0
    console.print(f"[red]error[/]: no active key with id {args.key_id!r}")
    return 1


async def _bridge(args: argparse.Namespace, announcer: Announcer) -> int:
    from reelcast.bridge.server import serve_bridge  # type: ignore[import-not-found,unused-ignore]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    # The server's settings give only the log format and level; the bridge reads its own.
    settings = _settings(args)
    bridge_settings = _bridge_settings(args)
    tls = bridge_settings.tls

    def ready(port: int) -> None:
        host = bridge_settings.http_listen.rsplit(":", 1)[0]
        announcer.say(f"reelcast bridge on http://{host}:{port}/ -> {bridge_settings.grpc_target}")
        # uvicorn gave its loggers handlers of their own as it started; route them through ours.
        adopt_loggers()
        http = f"{'https' if tls else 'http'}://{dialable_host(host)}:{port}"
        announcer.ready(grpc=None, http=http, metrics=None, tls=tls, grpcTarget=bridge_settings.grpc_target)

    configure_logging(settings.log_format, settings.log_level)
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
    await serve_bridge(bridge_settings, stop=stop, on_ready=ready)
    return 0


async def _gc(args: argparse.Namespace) -> int:
    from reelcast.server.retention import collect_garbage
    from reelcast.server.store import SqliteJobStore

    settings = _settings(args)
    if args.older_than is not None:
        settings.retention_seconds = args.older_than
    store = SqliteJobStore(settings.database_path)
    try:
        removed = await collect_garbage(settings, store)
    finally:
        await store.close()
    _print_result(f"removed {len(removed)} finished job(s)")
    return 0


async def _render(args: argparse.Namespace) -> int:
    """Runs an in-process server on a free loopback port and drives it like any other client."""
    from reelcast.server.app import ReelcastServer

    settings = _settings(args)
    settings.grpc_listen = "127.0.0.1:0"
    settings.tls_cert_file = settings.tls_key_file = None
    # Owner-only in the data dir (docs/security.md), while the copy at --output gets the user's usual mode.
    user_umask = use_private_umask()
    server = ReelcastServer(settings)
    await server.start()
    # A key of its own for this one render, revoked when it ends: the port is open to local users meanwhile.
    record, raw_key = await server.keys.acreate("render")
    try:
        async with AsyncClient(server.target, api_key=raw_key) as client:
            created = await client.create_job(_spec(args))
            completed = await _follow(client, created.id, 0, False)
            if completed is None:
                return 1
            os.umask(user_umask)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, completed.output.video_path, args.output)
            _print_result(str(args.output.resolve()))
            return 0
    except ClientError as error:
        return _report_rpc_error(error)
    finally:
        await server.keys.arevoke(record.id)
        await server.stop(grace=1.0)


def _run_serving(args: argparse.Namespace) -> int:
    """A long-running command (``SERVING_COMMANDS``), which announces on stdout that it is ready and, once
    it has stopped cleanly, that it stopped (server/announce.py)."""
    announcer = Announcer(args.command, args.announce, _print_result)
    if args.command == "worker":
        from reelcast.server.worker import serve_worker

        code = asyncio.run(serve_worker(_settings(args), announcer))
    elif args.command == "bridge":
        code = asyncio.run(_bridge(args, announcer))
    else:
        code = asyncio.run(_serve(args, announcer))
    announcer.stopped(code)
    return code


# The commands that write into the data dir: everything they create there is owner-only (docs/security.md).
PRIVATE_COMMANDS = ("serve", "server", "worker", "gc", "keys")
# The commands that run until stopped, and take --announce.
SERVING_COMMANDS = ("serve", "server", "worker", "bridge")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in PRIVATE_COMMANDS:
        use_private_umask()
    try:
        if args.command in SERVING_COMMANDS:
            return _run_serving(args)
        if args.command == "gc":
            return asyncio.run(_gc(args))
        if args.command == "keys":
            return asyncio.run(_keys(args))
        if args.command == "render":
            return asyncio.run(_render(args))
        return asyncio.run(_client_command(args))
    except grpc.RpcError as error:
        return _report_rpc_error(error)
    except ReelcastError as error:
        # Escaped: a remediation such as `pip install 'reelcast[nats]'` is text, not console markup.
        console.print(f"[red]error {error.code}[/]: {escape(error.message)}")
        console.print(f"remediation: {escape(error.error.remediation)}")
        return 1
    except argparse.ArgumentTypeError as error:
        console.print(f"[red]error[/]: {error}")
        return 2
    except StageSettingsError as error:  # a REELCAST_PLUGIN_* variable no stage has, or a bad value
        console.print(f"[red]error[/]: {escape(str(error))}")
        console.print("remediation: check the stage's settings in docs/plugins.md (plugin configuration)")
        return 2
    except StoreChoiceError as error:
        console.print(f"[red]error[/]: {escape(str(error))}")
        console.print("remediation: pass --store nats://HOST:PORT[,HOST:PORT...] or set REELCAST_STORE")
        return 2
    except NatsUnreachableError as error:
        console.print(f"[red]error[/]: {error}")
        console.print("remediation: start nats-server there, or check --store / REELCAST_STORE")
        return 1
    except OSError as error:
        console.print(f"[red]error[/]: {error.strerror or error}")
        console.print("remediation: check the address, port and data directory")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
