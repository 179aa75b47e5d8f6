"""The `reelcast jobs` and `reelcast stages` commands on top of the client library: errors print code,
message, remediation and correlation id; `jobs watch` resumes through a dropped connection."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.client.conftest import HANG_TIMEOUT, Secured
from tests.client.proxy import CuttingProxy
from tests.test_cli import run_cli


async def test_an_error_prints_code_message_remediation_and_the_correlation_id(
    open_server: ReelcastServer,
) -> None:
    code, _, err = await run_cli(
        "jobs", "get", "no-such-job", "--target", open_server.target, "--correlation-id", "cli-trace-1"
    )
    assert code == 1
    assert "error E003-JOB_NOT_FOUND: No job with this id." in err
    assert "remediation: Check the job id" in err
    assert "correlation id: cli-trace-1" in err
    assert "Traceback" not in err


async def test_invalid_input_lists_the_field_violations(open_server: ReelcastServer) -> None:
    code, _, err = await run_cli(
        "jobs", "create", "--topic", "x", "--fps", "500", "--target", open_server.target
    )
    assert code == 1
    assert "E001-INVALID_SPEC" in err
    assert "spec.render.fps:" in err
    assert "correlation id: " in err


async def test_a_malformed_correlation_id_is_refused_before_any_call(open_server: ReelcastServer) -> None:
    code, _, err = await run_cli("stages", "--target", open_server.target, "--correlation-id", "no spaces")
    assert code == 2
    assert "correlation id 'no spaces' must match" in err


async def test_create_get_list_and_cancel(open_server: ReelcastServer) -> None:
    target = ("--target", open_server.target)
    code, out, err = await run_cli(
        "jobs", "create", "--topic", "CLI job", "--correlation-id", "cli-c1", *target
    )
    assert code == 0, err
    job_id = out.strip()
    code, out, _ = await run_cli("jobs", "get", job_id, *target)
    assert code == 0
    got = json.loads(out)
    assert (got["id"], got["correlationId"]) == (job_id, "cli-c1")
    code, out, _ = await run_cli("jobs", "list", "--page-size", "1", *target)
    assert code == 0
    assert out.startswith(job_id)
    code, out, err = await run_cli("jobs", "cancel", job_id, *target)
    # The fast pipeline may have finished before the cancel arrived.
    assert (code, out.strip()) == (0, f"cancel requested: {job_id}") or "E004-JOB_ALREADY_FINISHED" in err


async def test_stages_needs_the_api_key_and_uses_reelcast_api_key(secured: Secured) -> None:
    target = ("--target", secured.server.target)
    code, _, err = await run_cli("stages", *target, env={"REELCAST_API_KEY": ""})
    assert code == 1
    assert "E020-UNAUTHENTICATED" in err
    assert "reelcast keys create" in err
    code, out, err = await run_cli("stages", *target, env={"REELCAST_API_KEY": secured.keys["alice"]})
    assert code == 0, err
    assert "script" in out


async def test_jobs_watch_resumes_through_a_dropped_connection(hanging_server: ReelcastServer) -> None:
    from reelcast.client import AsyncClient

    proxy = await CuttingProxy(hanging_server.target).start()
    process = None
    try:
        async with AsyncClient(hanging_server.target) as client:
            job = await client.create_job(topic="Watched by the CLI")
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "reelcast.cli", "jobs", "watch", job.id, "--json", "--target", proxy.target),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(os.environ),
            )
            lines: list[dict[str, object]] = []
            cancelled = False

            async def read() -> None:
                nonlocal cancelled
                assert process is not None and process.stdout is not None
                while line := await process.stdout.readline():
                    lines.append(json.loads(line))
                    if lines[-1].get("message") == "hanging" and not cancelled:
                        # The watch is live and waiting: cut it, let it reconnect, then end the job.
                        proxy.cut()
                        await proxy.wait_accepted(2)
                        await client.cancel_job(job.id)
                        cancelled = True

            await asyncio.wait_for(read(), HANG_TIMEOUT)
            # A cancelled job is a failed one for the command's exit status.
            assert await asyncio.wait_for(process.wait(), HANG_TIMEOUT) == 1
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await proxy.close()
    assert cancelled
    assert [int(str(line["sequence"])) for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["kind"] == "EVENT_KIND_JOB_FAILED"


# What a script reads: stdout holds exactly the command's result, stderr the progress and every message.


async def _finished_job(server: ReelcastServer, topic: str = "Piped") -> job_pb2.Job:
    from reelcast.client import AsyncClient

    async with AsyncClient(server.target) as client:
        job = await client.create_job(topic=topic)
        async for _event in client.watch_job(job.id):
            pass
        return await client.get_job(job.id)


async def test_jobs_create_watch_prints_the_job_id_then_the_output_path_and_the_progress_on_stderr(
    open_server: ReelcastServer,
) -> None:
    from reelcast.client import AsyncClient

    code, out, err = await run_cli(
        "jobs", "create", "--topic", "Piped", "--watch", "--target", open_server.target
    )
    assert code == 0, err
    job_id, path = out.splitlines()
    async with AsyncClient(open_server.target) as client:
        job = await client.get_job(job_id)
    assert out == f"{job.id}\n{job.output.video_path}\n"
    assert path == job.output.video_path
    assert "Overall" in err and "100%" in err


async def test_jobs_watch_prints_only_the_output_path_on_stdout(open_server: ReelcastServer) -> None:
    job = await _finished_job(open_server)
    code, out, err = await run_cli("jobs", "watch", job.id, "--target", open_server.target)
    assert code == 0, err
    assert out == f"{job.output.video_path}\n"
    assert "Overall" in err and "Postprocessing" in err


async def test_jobs_watch_json_prints_only_the_events_on_stdout(open_server: ReelcastServer) -> None:
    job = await _finished_job(open_server)
    code, out, err = await run_cli("jobs", "watch", job.id, "--json", "--target", open_server.target)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [int(event["sequence"]) for event in events] == list(range(1, job.last_sequence + 1))
    assert events[-1]["kind"] == "EVENT_KIND_JOB_COMPLETED"


async def test_jobs_get_prints_exactly_the_job_as_json(open_server: ReelcastServer) -> None:
    topic = "A topic [bold]with markup[/bold] and far longer than a terminal's eighty columns and more"
    job = await _finished_job(open_server, topic)
    code, out, err = await run_cli("jobs", "get", job.id, "--target", open_server.target)
    assert code == 0, err
    got = json.loads(out)
    assert (got["id"], got["spec"]["brief"]["topic"]) == (job.id, topic)
    assert got["output"]["videoPath"] == job.output.video_path


async def test_jobs_list_prints_one_unwrapped_line_per_job_and_the_page_hint_on_stderr(
    open_server: ReelcastServer,
) -> None:
    topic = "Otters [bold]hold[/bold] hands [/x] while they sleep, and this topic runs past eighty columns"
    older = await _finished_job(open_server, "Older")
    newer = await _finished_job(open_server, topic)
    target = ("--target", open_server.target)
    code, out, err = await run_cli("jobs", "list", "--page-size", "1", *target)
    assert code == 0, err
    assert out == f"{newer.id}  succeeded  100.0%  {topic[:60]}\n"
    token = re.search(r"--page-token (\S+)", err)
    assert token is not None, err
    code, out, err = await run_cli(
        "jobs", "list", "--page-size", "1", "--page-token", token.group(1), *target
    )
    assert code == 0, err
    assert out.split()[0] == older.id


async def test_jobs_list_json_prints_the_page_with_its_token(open_server: ReelcastServer) -> None:
    jobs = [await _finished_job(open_server, f"Listed {n}") for n in range(2)]
    code, out, err = await run_cli(
        "jobs", "list", "--json", "--page-size", "1", "--target", open_server.target
    )
    assert code == 0, err
    page = json.loads(out)
    assert [job["id"] for job in page["jobs"]] == [jobs[1].id]
    assert page["nextPageToken"]


async def test_jobs_cancel_and_stages_print_their_result_on_stdout(hanging_server: ReelcastServer) -> None:
    from reelcast.client import AsyncClient

    target = ("--target", hanging_server.target)
    async with AsyncClient(hanging_server.target) as client:
        job = await client.create_job(topic="Cancelled by the CLI")
    code, out, err = await run_cli("jobs", "cancel", job.id, *target)
    assert (code, out) == (0, f"cancel requested: {job.id}\n"), err
    code, out, err = await run_cli("stages", *target)
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()] == [
        "script",
        "voice",
        "visuals",
        "render",
        "postprocess",
    ]


async def test_jobs_watch_of_an_unknown_job_prints_e003_before_drawing_anything(
    open_server: ReelcastServer,
) -> None:
    code, out, err = await run_cli("jobs", "watch", "nope", "--target", open_server.target)
    assert code == 1
    assert out == ""
    assert err.startswith("error E003-JOB_NOT_FOUND"), err
    assert "Overall" not in err and "%" not in err


async def test_jobs_watch_in_a_40_column_terminal_still_draws_the_bars_and_the_eta(
    open_server: ReelcastServer,
) -> None:
    job = await _finished_job(open_server)
    code, out, err = await run_cli(
        "jobs", "watch", job.id, "--target", open_server.target, env={"COLUMNS": "40"}
    )
    assert code == 0, err
    drawn = err.splitlines()
    overall = next(line for line in drawn if line.startswith("Overall"))
    assert "━" * 10 in overall and "100%" in overall and "0:00:00" in overall, err
    assert all(len(line) <= 40 for line in drawn), err
    assert out == f"{job.output.video_path}\n"


async def test_a_reader_that_leaves_early_ends_the_command_quietly(open_server: ReelcastServer) -> None:
    """`reelcast jobs list | head -1`: the pipe closes before the command writes; no error about it."""
    await _finished_job(open_server)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "reelcast.cli", "jobs", "list", "--target", open_server.target),
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), HANG_TIMEOUT)
    assert process.returncode == 1
    assert err.decode() == ""


async def test_jobs_create_review_then_script_then_approve_with_an_edited_file(
    settings: Settings, tmp_path: Path
) -> None:
    from reelcast.plugins.builtin import script

    server = ReelcastServer(settings, host=PluginHost.load(builtins=False))
    server.host.register(script, "script")  # a real script.json to review, and nothing to render
    await server.start()
    target = ("--target", server.target)
    try:
        code, out, err = await run_cli("jobs", "create", "--topic", "Reviewed otters", "--review", *target)
        assert code == 0, err
        job_id = out.strip()
        assert f"reelcast jobs approve {job_id}" in err
        for _ in range(int(HANG_TIMEOUT * 10)):
            code, out, err = await run_cli("jobs", "script", job_id, *target)
            if code == 0:
                break
            assert "no script under review" in err
            await asyncio.sleep(0.1)
        scenes = json.loads(out)
        assert scenes and all(scene["narration"] for scene in scenes)

        bad = tmp_path / "bad.json"
        bad.write_text('{"narration": "not a list"}')
        code, _, err = await run_cli("jobs", "approve", job_id, "--script", str(bad), *target)
        assert code == 2 and "not a JSON list of scene objects" in err
        unknown = tmp_path / "unknown.json"
        unknown.write_text('[{"narration": "ok", "colour": "red"}]')
        code, _, err = await run_cli("jobs", "approve", job_id, "--script", str(unknown), *target)
        assert code == 2 and "colour" in err
        blank = tmp_path / "blank.json"
        blank.write_text('[{"narration": " "}]')
        code, _, err = await run_cli("jobs", "approve", job_id, "--script", str(blank), *target)
        assert code == 1 and "E001-INVALID_SPEC" in err and "scenes[0].narration" in err

        edited = tmp_path / "edited.json"
        edited.write_text(json.dumps([{**scenes[0], "narration": "Edited on the command line."}]))
        code, out, err = await run_cli("jobs", "approve", job_id, "--script", str(edited), *target)
        assert (code, out.strip()) == (0, f"approved: {job_id}"), err
        code, _, err = await run_cli("jobs", "approve", job_id, *target)
        assert code == 1 and "E015-JOB_NOT_AWAITING_REVIEW" in err
        job = await server.store.get_job(job_id)
        assert job is not None and [scene.narration for scene in job.review.scenes] == [
            "Edited on the command line."
        ]
    finally:
        await server.stop(grace=0.5)
