"""reelcast processes of a distributed deployment, as real children: ``server``, ``worker`` and ``bridge``.

Each runs in its own session, so that ``kill`` takes its subprocesses (ffmpeg) with it, as a machine crash
would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_READY = {
    "server": re.compile(r"reelcast gRPC on (\S+:\d+)"),
    "serve": re.compile(r"reelcast gRPC on (\S+:\d+)"),
    "worker": re.compile(r"reelcast worker (\S+) running"),
    "bridge": re.compile(r"reelcast bridge on (http://\S+:\d+)/"),
}


class ReelcastProcess:
    def __init__(self, kind: str, args: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.kind = kind
        self.args = list(args)
        self.log_path = log_path
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.starts = 0

    @property
    def http_base(self) -> str:
        return self.address

    def start(self, timeout: float = 60.0) -> str:
        command = [sys.executable, "-m", "reelcast.server.cli", self.kind, *self.args]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _READY[self.kind].findall(self.log_path.read_text(errors="replace"))
            if len(found) > self.starts:
                self.starts += 1
                self.address = found[-1]
                return self.address
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} did not start:\n{self.log_path.read_text()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole process group (the process and its ffmpeg)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def server(base: Path, name: str, store: str, env: Mapping[str, str]) -> ReelcastProcess:
    args = ["--store", store, "--grpc-listen", "127.0.0.1:0", "--data-dir", str(base / name)]
    return ReelcastProcess("server", args, base / f"{name}.log", env)


def worker(
    base: Path, name: str, store: str, env: Mapping[str, str], concurrency: int = 1
) -> ReelcastProcess:
    args = ["--store", store, "--concurrency", str(concurrency), "--data-dir", str(base / name)]
    return ReelcastProcess("worker", args, base / f"{name}.log", env)


def bridge(base: Path, name: str, target: str, env: Mapping[str, str]) -> ReelcastProcess:
    args = ["--grpc-target", target, "--http-listen", "127.0.0.1:0"]
    return ReelcastProcess("bridge", args, base / f"{name}.log", env)
