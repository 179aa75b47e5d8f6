"""Log lines of a real ``reelcast serve``: JSON on stderr by default, one object per line, and every line of a
job (the runner's, and its stages' own, from coroutines, threads and subprocess callbacks) carries the job's
correlation id, job id and stage; ``--log-format human`` shows the same context in readable lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from grpc import aio

from reelcast.cli import main
from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.launcher import announcements
from tests.observability.conftest import plugin_env
from tests.processes import ServerProcess

PLUGIN_LOGGER = "reelcast_logging_plugin"
# Lines the plugin logs in each way a stage can; each must be there, with its context.
PLUGIN_MESSAGES = (
    "speak: through the stage's own logger",
    "speak: through a module logger, in a coroutine",
    "speak: the subprocess said 'hello from a subprocess'",
    "draw: through a module logger, in a worker thread",
    "draw: through the stage's own logger, in a worker thread",
)


async def _run_jobs(target: str, topics_and_ids: list[tuple[str, str]]) -> list[job_pb2.Job]:
    """Creates one job per (topic, correlation id) and follows each to its end."""
    jobs = []
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        for topic, correlation_id in topics_and_ids:
            metadata = (("x-correlation-id", correlation_id),)
            spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic=topic))
            created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), metadata=metadata)
            async for _ in stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=created.job.id)):
                pass
            got = await stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.job.id))
            jobs.append(got.job)
    return jobs


def _server(site: Path, tmp_path: Path, *args: str) -> ServerProcess:
    return ServerProcess(tmp_path / "data", env=plugin_env(site), separate_stderr=True, args=args)


async def test_every_log_line_is_json_and_a_jobs_lines_carry_its_correlation_id_job_id_and_stage(
    installed_logging_plugin: Path, tmp_path: Path
) -> None:
    server = _server(installed_logging_plugin, tmp_path, "--log-level", "debug")
    server.start()
    try:
        succeeded, failed = await _run_jobs(server.target, [("fine", "obs-ok-1"), ("fail", "obs-fail-1")])
    finally:
        assert server.terminate() == 0
    assert succeeded.status == job_pb2.JOB_STATUS_SUCCEEDED
    assert failed.status == job_pb2.JOB_STATUS_FAILED
    assert server.stderr_path is not None
    raw_lines = server.stderr_path.read_text().splitlines()
    lines: list[dict[str, Any]] = [json.loads(line) for line in raw_lines]  # every line, or this raises
    assert all(isinstance(line, dict) for line in lines)
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "correlation_id", "job_id", "stage"} <= line.keys()
    # The announcements stay on stdout, where scripts look for them.
    assert [each.event for each in announcements(server.log_path.read_text())] == ["ready", "stopped"]
    assert not any("announce" in line or '"announce"' in line["message"] for line in lines)

    for job in (succeeded, failed):
        own = [line for line in lines if line["job_id"] == job.id]
        assert own, f"no line for job {job.id}"
        for line in own:
            assert line["correlation_id"] == job.correlation_id, line
            assert "stage" in line
        messages = [line["message"] for line in own]
        assert f"job {job.id} claimed (redelivered: False)" in messages
        assert any(m.startswith(f"job {job.id} ended ") for m in messages)
        # The runner's own lines while a stage runs name the stage.
        speak_done = [line for line in own if line["message"].startswith("stage speak succeeded after")]
        assert [line["stage"] for line in speak_done] == ["speak"]
        # The subprocess helper's debug line is logged from the stage's task, with its context.
        started = [line for line in own if line["message"].startswith("started pid")]
        assert [line["stage"] for line in started] == ["speak"]

    # Every line a stage logged itself, however it logged it, carries its job and its stage.
    from_stages = [
        line
        for line in lines
        if line["logger"] == PLUGIN_LOGGER or line["logger"].startswith("reelcast.stage.")
    ]
    assert from_stages
    for line in from_stages:
        job = succeeded if line["job_id"] == succeeded.id else failed
        assert line["job_id"] == job.id, line
        assert line["correlation_id"] == job.correlation_id, line
        # The plugin's messages start with their stage's name; ctx.log's logger is named after it.
        if line["logger"] == PLUGIN_LOGGER:
            assert line["stage"] == line["message"].split(":", 1)[0], line
        else:
            assert line["stage"] == line["logger"].removeprefix("reelcast.stage."), line
    for job in (succeeded, failed):
        stage_messages = {line["message"] for line in from_stages if line["job_id"] == job.id}
        assert set(PLUGIN_MESSAGES) <= stage_messages, job.spec.brief.topic

    # The failure: the stage's last words and the runner's traceback, both in the failing stage.
    failure = [line for line in lines if line["job_id"] == failed.id and line["level"] == "ERROR"]
    assert {line["message"] for line in failure} >= {
        "draw: failing on purpose",
        f"job {failed.id}: stage draw raised",
    }
    assert all(line["stage"] == "draw" for line in failure)
    traceback = next(line for line in failure if line["message"].endswith("stage draw raised"))
    assert "RuntimeError: draw failed on purpose" in traceback["exc_info"]


async def test_human_log_format_shows_the_job_stage_and_correlation_id_in_readable_lines(
    installed_logging_plugin: Path, tmp_path: Path
) -> None:
    server = _server(installed_logging_plugin, tmp_path, "--log-format", "human")
    server.start()
    try:
        (job,) = await _run_jobs(server.target, [("fine", "obs-human-1")])
    finally:
        assert server.terminate() == 0
    assert server.stderr_path is not None
    lines = server.stderr_path.read_text().splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    # The server runs with the SDK (dev extras): its lines carry the job's trace id too.
    trace_id = job.traceparent.split("-")[1]
    context = f"[job_id={job.id} stage=speak correlation_id=obs-human-1 trace_id={trace_id}]"
    pattern = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO reelcast_logging_plugin "
        + re.escape(context)
        + r": speak: through a module logger, in a coroutine$"
    )
    assert any(pattern.match(line) for line in lines), "\n".join(lines)
    for line in lines:
        if f"job_id={job.id}" in line:
            assert f"correlation_id=obs-human-1 trace_id={trace_id}]" in line, line


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        (["--metrics-listen", "nonsense"], {}, "metrics address must be HOST:PORT"),
        ([], {"REELCAST_METRICS_LISTEN": "127.0.0.1:http"}, "metrics address must be HOST:PORT"),
        ([], {"REELCAST_LOG_FORMAT": "xml"}, "log format must be one of json, human"),
        ([], {"REELCAST_LOG_LEVEL": "loud"}, "log level must be one of"),
    ],
)
def test_bad_observability_settings_are_refused_with_a_clear_error(
    arguments: list[str],
    environment: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, setting in environment.items():
        monkeypatch.setenv(name, setting)
    command = ["serve", "--data-dir", str(tmp_path), "--grpc-listen", "127.0.0.1:0", "--no-bridge"]
    assert main([*command, *arguments]) == 2
    assert expected in capsys.readouterr().err


def test_unknown_log_format_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--log-format", "xml"])
    assert exited.value.code == 2
    assert "--log-format" in capsys.readouterr().err
