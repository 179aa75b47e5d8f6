"""Runs ``reelcast serve`` as a real child process for tests that kill and restart it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from reelcast.plugins.host import BUILTIN_PLUGINS

# REELCAST_DISABLED_PLUGINS value that disables every built-in stage (tests that need only a test plugin).
ALL_BUILTINS = ",".join(name for name, _ in BUILTIN_PLUGINS)

_LISTENING = re.compile(r"reelcast gRPC on (\S+:\d+)")
_WEB = re.compile(r"reelcast web on (http://\S+:\d+)/")
_METRICS = re.compile(r"reelcast metrics on (https?://\S+/metrics)")


class ServerProcess:
    """``metrics`` serves /metrics on a free port (``metrics_url``); ``separate_stderr`` keeps stderr (the log
    lines) in ``stderr_path`` instead of interleaving it with stdout in ``log_path``; ``args`` are appended
    to the command line; ``keep_port`` makes every restart listen on the gRPC port the first start got, so
    that clients can reconnect to the same target."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        bridge: bool = False,
        *,
        metrics: bool = False,
        separate_stderr: bool = False,
        args: Sequence[str] = (),
        keep_port: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.bridge = bridge
        self.metrics = metrics
        self.args = list(args)
        self.keep_port = keep_port
        self.process: subprocess.Popen[str] | None = None
        self.target = ""
        self.http_base = ""
        self.metrics_url = ""
        self.log_path = data_dir.parent / f"server-{data_dir.name}.log"
        self.stderr_path = self.log_path.with_suffix(".stderr") if separate_stderr else None
        self.starts = 0

    def _grpc_listen(self) -> str:
        if not self.keep_port:
            return "127.0.0.1:0"
        if not self.target:
            # A port every restart can bind again: below the ephemeral range, where no outgoing connection
            # takes it while the server is down (see tests/nats/natsproc.py).
            from tests.nats.natsproc import free_port

            return f"127.0.0.1:{free_port()}"
        return self.target

    def start(self, timeout: float = 60.0) -> str:
        command = [
            sys.executable,
            "-m",
            "reelcast.server.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-listen",
            self._grpc_listen(),
        ]
        command += ["--http-listen", "127.0.0.1:0"] if self.bridge else ["--no-bridge"]
        command += ["--metrics-listen", "127.0.0.1:0"] if self.metrics else []
        command += self.args
        log = self.log_path.open("a")
        errors = self.stderr_path.open("a") if self.stderr_path is not None else subprocess.STDOUT
        self.process = subprocess.Popen(command, stdout=log, stderr=errors, env=self.env, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The log is appended across restarts: wait for this start's own line.
            text = self.log_path.read_text()
            found = _LISTENING.findall(text)
            web = _WEB.findall(text)
            metrics = _METRICS.findall(text)
            if (
                len(found) > self.starts
                and (not self.bridge or len(web) > self.starts)
                and (not self.metrics or len(metrics) > self.starts)
            ):
                self.starts += 1
                self.target = found[-1]
                self.http_base = web[-1] if self.bridge else ""
                self.metrics_url = metrics[-1] if self.metrics else ""
                return self.target
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            time.sleep(0.05)
        raise TimeoutError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        """What the process printed so far: stdout, then stderr when it is kept apart."""
        text = self.log_path.read_text()
        if self.stderr_path is not None and self.stderr_path.exists():
            text += self.stderr_path.read_text()
        return text

    def stop(self) -> None:
        """Terminates the server if it still runs (for ``finally`` blocks and fixture teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.terminate()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        return code
