"""Runs ``reelcast serve`` as a real child process for tests that kill and restart it (tests/launcher.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reelcast.plugins.host import BUILTIN_PLUGINS
from tests.launcher import ReelcastProcess

# REELCAST_DISABLED_PLUGINS value that disables every built-in stage (tests that need only a test plugin).
ALL_BUILTINS = ",".join(name for name, _ in BUILTIN_PLUGINS)


class ServerProcess(ReelcastProcess):
    """``reelcast serve`` on ``data_dir``: gRPC on a free port, with ``bridge`` the web bridge too
    (``http_base``); ``metrics`` serves /metrics on a free port (``metrics_url``); ``separate_stderr`` keeps
    stderr (the log lines) in ``stderr_path`` instead of interleaving it with stdout in ``log_path``; ``args``
    are appended to the command line; ``keep_port`` makes every restart listen on the gRPC port the first
    start got, so that clients can reconnect to the same target."""

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
        log_path = data_dir.parent / f"server-{data_dir.name}.log"
        stderr_path = log_path.with_suffix(".stderr") if separate_stderr else None
        super().__init__("serve", args, log_path, env, stderr_path=stderr_path)
        self.data_dir = data_dir
        self.bridge = bridge
        self.metrics = metrics
        self.keep_port = keep_port
        self._port_kept = ""

    def _grpc_listen(self) -> str:
        if not self.keep_port:
            return "127.0.0.1:0"
        if not self._port_kept:
            # A port every restart can bind again: below the ephemeral range, where no outgoing connection
            # takes it while the server is down (see tests/nats/natsproc.py).
            from tests.nats.natsproc import free_port

            self._port_kept = f"127.0.0.1:{free_port()}"
        return self._port_kept

    def command_args(self) -> list[str]:
        command = ["--data-dir", str(self.data_dir), "--grpc-listen", self._grpc_listen()]
        command += ["--http-listen", "127.0.0.1:0"] if self.bridge else ["--no-bridge"]
        command += ["--metrics-listen", "127.0.0.1:0"] if self.metrics else []
        return command + self.args
