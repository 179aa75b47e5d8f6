"""The ``reelcast`` command: run the server, the bridge, and act as a gRPC client of ``JobService``.

Every failure prints the error code and its remediation, never a traceback. stdout carries only a command's
result (an id, a path, JSON, one line per listed item); progress, messages and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import grpc
from rich.markup import escape

from reelcast.cli.gc import run_gc
from reelcast.cli.jobs import client_command
from reelcast.cli.keys import run_keys
from reelcast.cli.media import media_command
from reelcast.cli.output import console, report_rpc_error
from reelcast.cli.parser import build_parser
from reelcast.cli.render import run_render
from reelcast.cli.serving import run_serving
from reelcast.cli.webhooks import webhooks_command
from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.plugins.settings import StageSettingsError
from reelcast.server.config import use_private_umask
from reelcast.server.storage.backend import NatsUnreachableError, StoreChoiceError

__all__ = ["build_parser", "main"]


# The commands that write into the data dir: everything they create there is owner-only (docs/security.md).
PRIVATE_COMMANDS = ("serve", "server", "worker", "gc", "keys")

# The commands that run until stopped, and take --announce.
SERVING_COMMANDS = ("serve", "server", "worker", "bridge")


# The failures a command ends in without a catalogue code: what to do about each, and the exit status (2: the
# command line or the environment asks for something unusable). The first matching type wins: the NATS
# error is an OSError too.
FAILURES: tuple[tuple[type[Exception], str | None, int], ...] = (
    (argparse.ArgumentTypeError, None, 2),
    (StageSettingsError, "check the stage's settings in docs/plugins.md (plugin configuration)", 2),
    (StoreChoiceError, "pass --store nats://HOST:PORT[,HOST:PORT...] or set REELCAST_STORE", 2),
    (NatsUnreachableError, "start nats-server there, or check --store / REELCAST_STORE", 1),
    (OSError, "check the address, port and data directory", 1),
)
FAILURE_TYPES = tuple(kind for kind, _, _ in FAILURES)
# Catalogue errors that the command line itself asked for: exit status 2, like a bad flag.
COMMAND_LINE_ERRORS = {errors.SCRIPT_FILE_INVALID.code: 2}


def report_failure(error: Exception) -> int:
    """Prints ``error`` and its remediation (never a traceback) and returns the exit status."""
    remediation, status = next((fix, code) for kind, fix, code in FAILURES if isinstance(error, kind))
    text = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
    console.print(f"[red]error[/]: {escape(text)}")
    if remediation:
        console.print(f"remediation: {remediation}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in PRIVATE_COMMANDS:
        use_private_umask()
    try:
        if args.command in SERVING_COMMANDS:
            return run_serving(args)
        if args.command == "gc":
            return asyncio.run(run_gc(args))
        if args.command == "keys":
            return asyncio.run(run_keys(args))
        if args.command == "render":
            return asyncio.run(run_render(args))
        if args.command == "media":
            return asyncio.run(media_command(args))
        if args.command == "webhooks":
            return asyncio.run(webhooks_command(args))
        return asyncio.run(client_command(args))
    except grpc.RpcError as error:
        return report_rpc_error(error)
    except ReelcastError as error:
        # Escaped: a remediation such as `pip install 'reelcast[nats]'` is text, not console markup.
        console.print(f"[red]error {error.code}[/]: {escape(error.message)}", soft_wrap=True)
        console.print(f"remediation: {escape(error.error.remediation)}", soft_wrap=True)
        return COMMAND_LINE_ERRORS.get(error.code, 1)
    except FAILURE_TYPES as error:
        return report_failure(error)
    except KeyboardInterrupt:
        return 130
