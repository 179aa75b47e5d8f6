"""The `reelcast jobs` and `reelcast stages` commands on top of the client library: errors print code,
message, remediation and correlation id; `jobs watch` resumes through a dropped connection."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from reelcast.server.app import ReelcastServer
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
                *("-m", "reelcast.server.cli", "jobs", "watch", job.id, "--json", "--target", proxy.target),
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
