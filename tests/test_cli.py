"""The ``reelcast`` command as a user runs it: a real process, real output, errors without tracebacks."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from reelcast.server.app import ReelcastServer


async def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelcast.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_render_writes_a_playable_mp4_and_prints_only_its_path_on_stdout(tmp_path: Path) -> None:
    from tests.media import probe

    # Longer than the 80 columns a console assumes when stdout is a pipe: the path must come out whole.
    target = tmp_path / ("a-directory-name-long-enough-to-pass-eighty-columns-" * 2) / "otters.mp4"
    code, out, err = await run_cli(
        "render",
        "--topic",
        "Why otters hold hands",
        "--duration",
        "5",
        "--resolution",
        "640x360",
        "--data-dir",
        str(tmp_path / "data"),
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == f"{target.resolve()}\n"
    assert "Overall" in err and "Rendering" in err
    info = probe(target)
    assert (info.width, info.height) == (640, 360)
    assert 4.0 < info.duration < 8.0


async def test_render_failure_prints_code_remediation_and_log_path(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        "render",
        "--topic",
        "Otters",
        "--duration",
        "5",
        "--resolution",
        "640x360",
        "--data-dir",
        str(tmp_path / "data"),
        "-o",
        str(tmp_path / "never.mp4"),
        env={"REELCAST_FFMPEG_EXTRA_ARGS": "-c:v no_such_encoder"},
    )
    assert code == 1
    assert "E304-FFMPEG_RUNTIME" in err
    assert "remediation:" in err
    assert "log:" in err
    assert ".log" in err
    assert "Traceback" not in err
    assert not (tmp_path / "never.mp4").exists()


async def test_client_errors_show_the_code_and_remediation_not_a_traceback(server: ReelcastServer) -> None:
    code, _, err = await run_cli("jobs", "get", "no-such-job", "--target", server.target)
    assert code == 1
    assert "E003-JOB_NOT_FOUND" in err
    assert "remediation:" in err
    assert "Traceback" not in err


async def test_unreachable_server_is_explained(tmp_path: Path) -> None:
    code, _, err = await run_cli("jobs", "list", "--target", "127.0.0.1:1")
    assert code == 2
    assert "cannot reach the reelcast server" in err
    assert "Traceback" not in err
