"""A port that is taken, or a store that cannot serve the command, gets a clear error from every serving
command, never a traceback: the operator learns what failed and what to do."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HANG_TIMEOUT = 60.0


@pytest.fixture
def taken_address() -> Iterator[str]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield f"127.0.0.1:{holder.getsockname()[1]}"
    finally:
        holder.close()


def reelcast(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reelcast.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=HANG_TIMEOUT, check=False)


@pytest.mark.parametrize("listener", ["grpc", "http"])
def test_serve_on_a_taken_port_names_the_address_and_exits_without_a_traceback(
    tmp_path: Path, taken_address: str, listener: str
) -> None:
    grpc_listen = taken_address if listener == "grpc" else "127.0.0.1:0"
    http_listen = taken_address if listener == "http" else "127.0.0.1:0"
    done = reelcast(
        "serve", "--data-dir", str(tmp_path), "--grpc-listen", grpc_listen, "--http-listen", http_listen
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "E031-LISTEN_FAILED" in output and taken_address in output, output
    assert "Traceback" not in output and "never retrieved" not in output, output


def test_a_bridge_on_a_taken_port_names_the_address_and_exits_without_a_traceback(taken_address: str) -> None:
    done = reelcast("bridge", "--grpc-target", "127.0.0.1:1", "--http-listen", taken_address)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "E031-LISTEN_FAILED" in output and taken_address in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["worker", "--store", "sqlite"],
        ["serve", "--store", "redis://127.0.0.1:6379", "--grpc-listen", "127.0.0.1:0", "--no-bridge"],
        ["server", "--store", "nats:/oops", "--grpc-listen", "127.0.0.1:0"],
    ],
    ids=["worker-embedded", "worker-sqlite", "serve-unknown-scheme", "server-malformed"],
)
def test_a_store_that_cannot_serve_the_command_is_exit_2_with_a_remediation(
    tmp_path: Path, command: list[str]
) -> None:
    done = reelcast(*command, "--data-dir", str(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "remediation: pass --store nats://" in output, output
    assert "Traceback" not in output, output
