"""How a command speaks: its result on stdout, whole and unwrapped; messages and errors on stderr."""

from __future__ import annotations

import os
import sys
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.markup import escape

from reelcast.client import ReelcastError as ClientError
from reelcast.client import from_rpc_error

console = Console(stderr=True)


def print_result(line: str) -> None:
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


def print_json(message: Any) -> None:
    print_result(json_format.MessageToJson(message, preserving_proto_field_name=False))


def report_rpc_error(error: grpc.RpcError | ClientError) -> int:
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
