"""Spread: 2 servers, 3 workers and 2 bridges on one NATS JetStream; 30 jobs run on every worker, and SSE
clients on either bridge follow jobs wherever they run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import cast

import httpx

from tests.nats.natsproc import NatsServer
from tests.nats.processes import ReelcastProcess, bridge, server, worker
from tests.processes import ALL_BUILTINS, ServerProcess
from tests.test_crash import TERMINAL, Follower

JOBS = 30


def succeeded_in(log: str) -> set[str]:
    return set(re.findall(r"job (\w+) ended JOB_STATUS_SUCCEEDED", log))


async def jobs_logged_as_succeeded(workers: list[ReelcastProcess], job_ids: set[str]) -> list[set[str]]:
    """The jobs each worker logged as succeeded, once every job in ``job_ids`` has been logged."""
    while True:
        ran_by = [succeeded_in(each.log()) for each in workers]
        if set().union(*ran_by) >= job_ids:
            return ran_by
        await asyncio.sleep(0.1)


async def test_thirty_jobs_spread_over_three_workers_and_stream_through_both_bridges(
    tmp_path: Path, nats_server: NatsServer, installed_sample_plugin: Path
) -> None:
    env = {
        "PYTHONPATH": str(installed_sample_plugin),
        "REELCAST_DISABLED_PLUGINS": ALL_BUILTINS,
        "REELCAST_SAMPLE_DELAY": "0.05",
    }
    store = nats_server.url
    servers = [server(tmp_path, f"server{index}", store, env) for index in range(2)]
    workers = [worker(tmp_path, f"worker{index}", store, env) for index in range(3)]
    processes: list[ReelcastProcess] = [*servers, *workers]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        bridges = [bridge(tmp_path, f"bridge{index}", servers[index].address, env) for index in range(2)]
        processes += bridges
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in bridges))

        job_ids: list[str] = []
        for index in range(JOBS):
            base = bridges[index % 2].http_base
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                response = await client.post("/api/jobs", json={"brief": {"topic": f"Spread {index}"}})
                assert response.status_code == 201, response.text
                job_ids.append(response.json()["jobId"])
        # Each bridge follows every job, whichever bridge created it and whichever worker runs it.
        followers = [Follower(cast(ServerProcess, each), job_ids) for each in bridges]
        await asyncio.wait_for(asyncio.gather(*(follower.run() for follower in followers)), 120)

        for follower in followers:
            for job_id in job_ids:
                sequences = follower.sequences[job_id]
                assert sequences == list(range(1, len(sequences) + 1)), f"gap or duplicate in {job_id}"
                assert sum(kind in TERMINAL for kind in follower.events[job_id]) == 1
                assert follower.events[job_id][-1] == "job-completed"
        # A worker logs a job's end just after publishing its terminal event, so the log may lag the stream.
        ran_by = await asyncio.wait_for(jobs_logged_as_succeeded(workers, set(job_ids)), 30)
        assert all(ran for ran in ran_by), [len(ran) for ran in ran_by]
        assert set().union(*ran_by) == set(job_ids)
        assert sum(len(ran) for ran in ran_by) == JOBS  # no job ran to the end twice
    finally:
        for process in processes:
            process.stop()
