"""The render stage under cancellation and failure, with the real ffmpeg."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.server.config import Settings

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub
from reelcast.jobs.validation import (
    MAX_DURATION_SECONDS,
    MAX_NARRATION_SECONDS,
    estimated_narration_seconds,
    with_defaults,
)
from tests.media import run_job, wav_seconds

LOG_HEADER_PREFIXES = (
    "FFmpeg Render Log - Job ID: ",
    "Correlation ID: ",
    "Started: ",
    "Resolution: ",
    "FFmpeg Path: ",
    "Command: ",
)


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "grpc_listen": "127.0.0.1:0",
        "progress_min_interval_seconds": 0.0,
        "x264_preset": "ultrafast",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _spec(seconds: float, width: int = 320, height: int = 180) -> job_pb2.JobSpec:
    return with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="Lighthouses"),
            plan=job_pb2.Plan(target_duration_seconds=seconds),
            render=job_pb2.RenderSpec(width=width, height=height),
        )
    )


def _ffmpeg_pids_for(work_dir: Path) -> list[int]:
    """PIDs of running processes whose command line names the job's work dir (its ffmpeg)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"ffmpeg" in argv[0] and any(str(work_dir).encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_log_complete(path: Path, job_id: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line, prefix in zip(lines, LOG_HEADER_PREFIXES, strict=False):
        assert line.startswith(prefix), (line, prefix)
    assert lines[0].endswith(job_id)
    assert lines[6] == "-" * 80
    assert lines[-3] == "-" * 80
    assert lines[-2].startswith("Completed: ")
    assert lines[-1].startswith("Exit Code: ")
    return lines


def test_cancel_during_rendering_stops_ffmpeg_and_leaves_no_partial_mp4(tmp_path: Path) -> None:
    # A slow preset on a minute of 720p keeps ffmpeg busy long enough to be cancelled mid-render.
    settings = _settings(tmp_path, x264_preset="veryslow")
    observed: dict[str, object] = {}

    async def cancel_when_rendering(
        event: job_pb2.JobProgress, stub: JobServiceAsyncStub, job_id: str
    ) -> None:
        if "pid" in observed or event.stage != "render" or event.kind != job_pb2.EVENT_KIND_STEP_PROGRESS:
            return
        if event.stage_percent <= 0:
            return
        pids = _ffmpeg_pids_for(settings.work_dir(job_id))
        assert len(pids) == 1, pids
        observed["pid"] = pids[0]
        observed["percent_at_cancel"] = event.stage_percent
        await stub.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id))
        cancelled_at = time.monotonic()
        while _alive(pids[0]) and time.monotonic() - cancelled_at < 5:  # noqa: ASYNC110 - polling /proc
            await asyncio.sleep(0.02)
        observed["gone_after"] = time.monotonic() - cancelled_at
        observed["alive"] = _alive(pids[0])

    run = run_job(settings, _spec(60, 1280, 720), cancel_when_rendering)
    assert "pid" in observed, "the render finished before it could be cancelled"
    assert observed["percent_at_cancel"] < 100  # type: ignore[operator]
    assert observed["alive"] is False
    assert observed["gone_after"] < 3.0  # type: ignore[operator]
    assert run.job.status == job_pb2.JOB_STATUS_CANCELLED
    assert [error.code for error in run.job.errors] == ["E311-CANCELLED"]
    assert run.events[-1].kind == job_pb2.EVENT_KIND_JOB_FAILED
    leftovers = [p for p in settings.data_dir.rglob("*") if ".mp4" in p.name]
    assert leftovers == []
    lines = _assert_log_complete(settings.ffmpeg_logs_dir / f"{run.job.id}.log", run.job.id)
    int(lines[-1].removeprefix("Exit Code: "))  # the footer carries ffmpeg's real exit code


def test_invalid_encoder_option_from_configuration_fails_with_e304(tmp_path: Path) -> None:
    settings = _settings(tmp_path, ffmpeg_extra_args=("-c:v", "no_such_encoder"))
    run = run_job(settings, _spec(4))
    assert run.job.status == job_pb2.JOB_STATUS_FAILED
    assert [error.code for error in run.job.errors] == ["E304-FFMPEG_RUNTIME"]
    failure = run.job.failure
    assert failure.error_code == "E304-FFMPEG_RUNTIME" and failure.stage == "render"
    assert "no_such_encoder" in failure.stderr_snippet
    assert len(failure.stderr_snippet.encode()) <= 16 * 1024
    assert failure.suggested_actions
    log_path = settings.ffmpeg_logs_dir / f"{run.job.id}.log"
    assert failure.log_path == str(log_path)
    lines = _assert_log_complete(log_path, run.job.id)
    assert lines[1] == f"Correlation ID: {run.job.correlation_id}"
    assert lines[3] == "Resolution: 320x180"
    assert lines[-1] != "Exit Code: 0"
    assert not list(settings.work_dir(run.job.id).glob("video.mp4*"))


def test_missing_ffmpeg_fails_with_e302(tmp_path: Path) -> None:
    run = run_job(_settings(tmp_path, ffmpeg_path=str(tmp_path / "no" / "ffmpeg")), _spec(4))
    assert [error.code for error in run.job.errors] == ["E302-FFMPEG_NOT_FOUND"]
    assert run.job.failure.stage == "render"


def test_render_past_its_time_limit_fails_with_e308_and_stops_ffmpeg(tmp_path: Path) -> None:
    settings = _settings(tmp_path, x264_preset="veryslow", render_timeout_seconds=0.5)
    started = time.monotonic()
    run = run_job(settings, _spec(60, 1280, 720))
    assert [error.code for error in run.job.errors] == ["E308-RENDER_TIMEOUT"]
    assert run.job.failure.log_path.endswith(f"{run.job.id}.log")
    assert time.monotonic() - started < 30
    assert _ffmpeg_pids_for(settings.work_dir(run.job.id)) == []
    assert not list(settings.work_dir(run.job.id).glob("video.mp4*"))
    _assert_log_complete(Path(run.job.failure.log_path), run.job.id)


def test_no_builtin_stage_uses_a_shell() -> None:
    sources = Path(__file__).resolve().parents[1] / "plugins" / "builtin"
    for source in sources.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        for forbidden in ("shell=True", "create_subprocess_shell", "os.system", "os.popen"):
            assert forbidden not in text, f"{source.name} uses {forbidden}"
    assert (sources / "render.py").is_file()


def test_a_script_that_speaks_far_longer_than_it_reads_stops_at_the_voice_stage_with_e203(
    tmp_path: Path,
) -> None:
    # Twelve digits read as one token but are spoken as a dozen words or more: this script's estimate fits
    # the limit at creation, its speech does not.
    numbers = " ".join(["987654321987"] * 150)
    spec = with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="Numbers"),
            # espeak-ng speaks 660 s in a second; Piper takes minutes (tests/test_builtin_voice.py covers a
            # long Piper scene).
            voice=job_pb2.VoiceSpec(name="en-us"),
            script=[job_pb2.Scene(title=f"Part {index}", narration=numbers) for index in range(5)],
            render=job_pb2.RenderSpec(width=640, height=360),
        )
    )
    assert estimated_narration_seconds(spec) <= MAX_DURATION_SECONDS
    settings = _settings(tmp_path)
    run = run_job(settings, spec)
    assert run.job.status == job_pb2.JOB_STATUS_FAILED
    assert [error.code for error in run.job.errors] == ["E203-NARRATION_TOO_LONG"]
    assert run.job.failure.stage == "voice"
    assert run.job.errors[0].remediation
    steps = {step.name: step.status for step in run.job.steps}
    assert steps["voice"] == job_pb2.STEP_STATUS_FAILED
    assert steps["render"] == job_pb2.STEP_STATUS_SKIPPED
    # It stopped as soon as the measured audio passed the limit, not after speaking every scene.
    spoken = sorted((settings.work_dir(run.job.id) / "voice").glob("scene-*.wav"))
    assert 1 <= len(spoken) < 5
    assert sum(wav_seconds(path) for path in spoken) > MAX_NARRATION_SECONDS
    assert not (settings.work_dir(run.job.id) / "voice" / "narration.wav").exists()
