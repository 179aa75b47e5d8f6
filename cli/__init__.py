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
from reelcast.cli.output import console, report_rpc_error
from reelcast.cli.parser import build_parser
from reelcast.cli.render import run_render
from reelcast.cli.serving import run_serving
from reelcast.jobs.errors import ReelcastError
from reelcast.plugins.settings import StageSettingsError
from reelcast.server.config import use_private_umask
from reelcast.server.storage.backend import NatsUnreachableError, StoreChoiceError

__all__ = ["build_parser", "main"]


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
            return run_serving(args)
        if args.command == "gc":
            return asyncio.run(run_gc(args))
        if args.command == "keys":
            return asyncio.run(run_keys(args))
        if args.command == "render":
            return asyncio.run(run_render(args))
        return asyncio.run(client_command(args))
    except grpc.RpcError as error:
        return report_rpc_error(error)
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
