"""The data dir is private: with the usual umask (022), a data dir that reelcast creates is 0700 and every
file it writes there 0600 (database, WAL and SHM, logs, work dirs, outputs), so no other local user can read
a brief, an event log, a video or a key hash. An existing data dir that others can read gets one warning
(Jupyter's runtime-dir rule) and is left as the operator made it."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.config import Settings
from reelcast.server.storage.selection import open_backend
from tests.processes import ServerProcess

USUAL_UMASK = 0o022
SMALL_SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(topic="Private data dirs"),
    plan=job_pb2.Plan(target_duration_seconds=3),
    render=job_pb2.RenderSpec(width=320, height=180, fps=10, captions=True),
)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a user, for this test and the processes it starts."""
    previous = os.umask(USUAL_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and of everything beneath it, by path relative to ``root``."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            # A link to a file the package ships (the render's fonts folder for libass): no user data, and
            # a link's own mode is always 777.
            continue
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path) -> dict[str, int]:
    modes = modes_under(root)
    for relative, mode in modes.items():
        expected = 0o700 if (root / relative).is_dir() else 0o600
        assert mode == expected, f"{relative} is {mode:o}, not {expected:o}: {sorted(modes.items())}"
    return modes


def run_job(target: str) -> job_pb2.JobProgress:
    with grpc.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        job = stub.CreateJob(job_service_pb2.CreateJobRequest(spec=SMALL_SPEC), timeout=30).job
        events = list(stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), timeout=180))
    return events[-1]


def test_a_served_data_dir_and_everything_written_in_it_are_private_under_umask_022(
    tmp_path: Path, usual_umask: None
) -> None:
    data_dir = tmp_path / "data"
    served = ServerProcess(data_dir)
    try:
        last = run_job(served.start())
        assert last.kind == job_pb2.EVENT_KIND_JOB_COMPLETED, last
        # While the server runs: the database's WAL and SHM exist beside it.
        modes = assert_private(data_dir)
        assert {"reelcast.db", "reelcast.db-wal", "reelcast.db-shm"} <= set(modes)
        video = Path(last.output.video_path)
        assert video.is_relative_to(data_dir) and str(video.relative_to(data_dir)) in modes
        assert any(name.startswith("Logs/ffmpeg/") for name in modes), sorted(modes)
        assert served.terminate() == 0
    finally:
        served.stop()
    assert_private(data_dir)


def test_keys_create_makes_a_private_data_dir_under_umask_022(tmp_path: Path, usual_umask: None) -> None:
    data_dir = tmp_path / "keys-first"
    command = [sys.executable, "-m", "reelcast.cli", "keys", "create", "--user", "alice"]
    subprocess.run([*command, "--data-dir", str(data_dir)], check=True, capture_output=True, timeout=60)
    assert "reelcast.db" in assert_private(data_dir)


async def test_an_embedded_server_makes_its_data_dir_and_database_private_under_umask_022(
    tmp_path: Path, usual_umask: None
) -> None:
    # A program that embeds the server (as the tests do) sets no umask: the modes come from reelcast itself.
    data_dir = tmp_path / "embedded"
    backend = open_backend(Settings(data_dir=data_dir))
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "reelcast.db").stat().st_mode) == 0o600
    finally:
        await backend.close()


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o704], ids=lambda mode: f"{mode:o}")
async def test_an_existing_data_dir_others_can_read_is_warned_about_once_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    data_dir = tmp_path / f"shared-{mode:o}"
    data_dir.mkdir()
    data_dir.chmod(mode)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            backend = open_backend(Settings(data_dir=data_dir))
            await backend.close()
    warnings = [record for record in caplog.records if str(data_dir) in record.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "chmod 700" in warnings[0].getMessage()
    assert stat.S_IMODE(data_dir.stat().st_mode) == mode


async def test_an_existing_private_data_dir_gets_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "private"
    data_dir.mkdir(mode=0o700)
    data_dir.chmod(0o700)
    with caplog.at_level(logging.WARNING):
        await open_backend(Settings(data_dir=data_dir)).close()
    assert str(data_dir) not in caplog.text


def test_render_keeps_its_data_dir_private_and_writes_the_output_with_the_users_umask(
    tmp_path: Path, usual_umask: None
) -> None:
    data_dir, output = tmp_path / "render-data", tmp_path / "videos" / "out.mp4"
    command = [sys.executable, "-m", "reelcast.cli", "render", "--topic", "Private renders"]
    command += ["--duration", "3", "--resolution", "320x180", "--fps", "10"]
    command += ["-o", str(output), "--data-dir", str(data_dir)]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    assert "reelcast.db" in assert_private(data_dir)
    assert stat.S_IMODE(output.stat().st_mode) == 0o666 & ~USUAL_UMASK
