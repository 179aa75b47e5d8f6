"""reelcast processes of a distributed deployment, as real children: ``server``, ``worker`` and ``bridge``
(tests/launcher.py).

Each runs in its own session, so that ``kill`` takes its subprocesses (ffmpeg) with it, as a machine crash
would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.launcher import ReelcastProcess as _Launched


class ReelcastProcess(_Launched):
    """``reelcast KIND ARGS…`` in a session of its own, logging to ``log_path`` (stdout and stderr)."""

    def __init__(self, kind: str, args: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        super().__init__(kind, args, log_path, env, own_session=True)


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
