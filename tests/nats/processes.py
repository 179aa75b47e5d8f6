"""reelcast processes of a distributed deployment, as real children: ``server``, ``worker`` and ``bridge``
(tests/launcher.py), and what tests ask such a deployment: an API key made by ``reelcast keys``, the results
its workers recorded for a job's subtasks.

Each runs in its own session, so that ``kill`` takes its subprocesses (ffmpeg) with it, as a machine crash
would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nats

from reelcast.server.storage.nats.layout import STATE_BUCKET
from tests.launcher import ReelcastProcess as _Launched

KEY = re.compile(r"rck_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


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


def create_key(store: str, user: str, env: dict[str, str]) -> str:
    """A new API key for ``user``, made as an operator makes one (``reelcast keys create``)."""
    command = [sys.executable, "-m", "reelcast.cli", "keys", "create", "--user", user, "--store", store]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True, env=env)
    found = KEY.search(result.stdout)
    assert found is not None, result.stdout
    return found.group(0)


async def subtask_results(url: str, job_id: str) -> dict[str, Any]:
    """What each of a job's subtasks' workers recorded (nats/subtasks.py): its worker, start and end."""
    client = await nats.connect(url)
    try:
        state = await client.jetstream().key_value(STATE_BUCKET)
        entry = await state.get(f"subtasks.{job_id}")
        results: dict[str, Any] = json.loads(entry.value or b"{}")["results"]
        return results
    finally:
        await client.close()
