"""The one launcher of reelcast's long-running commands (``serve``, ``server``, ``worker``, ``bridge``) as
real child processes, for the tests and the bench alike.

A child runs with ``--announce json`` and is ready when its stdout holds its ``ready`` event
(docs/operations.md#announcements): the addresses come from that object, never from the lines printed for
people. stdout goes to ``log_path``, which is appended across restarts, and stderr (the log lines) too unless
``stderr_path`` keeps it apart; a start reads only what was written after it began, and only the event of its
own pid, so a restarted process is never taken for the one before it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The schema version this launcher reads; an event of another version stops the start with a clear error.
ANNOUNCE_VERSION = 1
CLI = (sys.executable, "-m", "reelcast.cli")


@dataclass(frozen=True)
class Announcement:
    """One announcement object: ``event`` (``ready``, ``stopped``), ``kind``, ``pid`` and the rest."""

    fields: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.fields["event"])

    @property
    def pid(self) -> int:
        return int(self.fields["pid"])

    def address(self, name: str) -> str:
        """A listener's address (``grpc``, ``http``, ``metrics``...), "" when the process has none."""
        return str(self.fields.get(name) or "")


def announcements(text: str) -> list[Announcement]:
    """The announcements among ``text``'s complete lines; other lines (log lines, JSON or not, when stderr
    shares the file) are skipped, as is a last line still being written."""
    found = []
    for line in text.splitlines(keepends=True):
        if not (line.startswith("{") and line.endswith("\n")):
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if isinstance(fields, dict) and "announce" in fields:
            if fields["announce"] != ANNOUNCE_VERSION:
                raise RuntimeError(f"announce version {fields['announce']!r}, not {ANNOUNCE_VERSION}: {line}")
            found.append(Announcement(fields))
    return found


class ReelcastProcess:
    """``reelcast KIND ARGS… --announce json`` as a child. ``program`` is the command that runs the CLI (the
    development interpreter's by default; another venv's ``reelcast`` script in the install tests); ``env`` is
    added to this process's environment, or replaces it with ``inherit_env=False``; ``own_session`` starts it
    in a session of its own, so that ``kill`` takes its subprocesses (ffmpeg) with it, as a machine crash
    would.

    Once started: ``ready`` is the ready event, ``target`` the gRPC address, ``http_base`` the bridge's origin
    (``http://HOST:PORT``), ``metrics_url`` the /metrics URL, ``address`` the one that names the process
    (gRPC for serve and server, the worker's name, the bridge's origin); "" for what it does not serve."""

    def __init__(
        self,
        kind: str,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        stderr_path: Path | None = None,
        own_session: bool = False,
        program: Sequence[str] = CLI,
        inherit_env: bool = True,
    ) -> None:
        self.kind = kind
        self.args = list(args)
        self.log_path = log_path
        self.stderr_path = stderr_path
        self.env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
        self.own_session = own_session
        self.program = list(program)
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: Announcement | None = None
        self.starts = 0

    def command_args(self) -> list[str]:
        """The arguments after the command name, computed at each start (subclasses may change them)."""
        return self.args

    def start(self, timeout: float = 60.0) -> str:
        """Starts the process and waits for its ready event; returns ``address``."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [*self.program, self.kind, *self.command_args(), "--announce", "json"]
        with self.log_path.open("ab") as out:
            errors = self.stderr_path.open("ab") if self.stderr_path is not None else subprocess.STDOUT
            try:
                self.process = subprocess.Popen(
                    command, stdout=out, stderr=errors, env=self.env, start_new_session=self.own_session
                )
            finally:
                if self.stderr_path is not None:
                    errors.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                written = log.read().decode(errors="replace")
            for announced in announcements(written):
                if announced.event == "ready" and announced.pid == self.process.pid:
                    self.ready = announced
                    self.starts += 1
                    return self.address
            if self.process.poll() is not None:
                raise RuntimeError(f"reelcast {self.kind} exited early:\n{self.output()}")
            time.sleep(0.05)
        raise TimeoutError(f"reelcast {self.kind} did not start:\n{self.output()}")

    def _address(self, name: str) -> str:
        return self.ready.address(name) if self.ready is not None else ""

    @property
    def target(self) -> str:
        return self._address("grpc")

    @property
    def http_base(self) -> str:
        return self._address("http")

    @property
    def metrics_url(self) -> str:
        return self._address("metrics")

    @property
    def address(self) -> str:
        return self._address({"worker": "worker", "bridge": "http"}.get(self.kind, "grpc"))

    def output(self) -> str:
        """What the process printed so far: stdout, then stderr when it is kept apart."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self.stderr_path is not None and self.stderr_path.exists():
            text += self.stderr_path.read_text(errors="replace")
        return text

    def log(self) -> str:
        return self.output()

    def kill(self) -> None:
        """SIGKILL, to the whole session with ``own_session`` (the process and its ffmpeg)."""
        if self.process is None or self.process.poll() is not None:
            return
        if self.own_session:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, and the exit status once the process has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Stops the process if it still runs (for ``finally`` blocks and fixture teardown): SIGTERM, then
        SIGKILL if it has not stopped within ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.terminate(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
