"""The crash test: ``reelcast serve`` is SIGKILLed at random moments while jobs are queued or running, and
restarted on the same data dir, while one browser-like client follows every job over the multi-job SSE
stream, resuming with ``Last-Event-ID``.

CI runs a small version; ``make crash-test`` runs the full one (20 cycles, 30 jobs) through the
``REELCAST_CRASH_CYCLES`` and ``REELCAST_CRASH_JOBS`` variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import httpx

from reelcast.bridge.sse import MultiCursor, job_key
from tests.media import decode_exit_code
from tests.processes import ServerProcess

CYCLES = int(os.environ.get("REELCAST_CRASH_CYCLES", "5"))
JOBS = int(os.environ.get("REELCAST_CRASH_JOBS", "8"))
TERMINAL = {"job-completed", "job-failed"}


class Follower:
    """Follows many jobs on one multi-job SSE connection, reconnecting with the last cursor."""

    def __init__(self, server: ServerProcess, job_ids: list[str]) -> None:
        self.server = server
        self.job_ids = job_ids
        self.cursor = ""
        self.sequences: dict[str, list[int]] = {job_id: [] for job_id in job_ids}
        self.events: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
        self.reconnects = 0
        # Set on the first event: the first kill waits for it, so that it always lands mid-stream (the jobs
        # are short enough that a kill on a timer alone can come after every job has already finished).
        self.first_event = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0)) as client:
            while True:
                try:
                    if await self._read_once(client):
                        return
                except (httpx.TransportError, httpx.HTTPStatusError):
                    pass
                self.reconnects += 1
                await asyncio.sleep(0.3)

    async def _read_once(self, client: httpx.AsyncClient) -> bool:
        headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
        url = f"{self.server.http_base}/api/events"
        params = {"jobs": ",".join(self.job_ids)}
        async with client.stream("GET", url, params=params, headers=headers) as response:
            response.raise_for_status()
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":") or line.startswith("retry:"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    self._record(fields)
                fields = {}
        return all(self.events[job_id] and self.events[job_id][-1] in TERMINAL for job_id in self.job_ids)

    def _record(self, fields: dict[str, str]) -> None:
        data = json.loads(fields["data"])
        job_id = data["jobId"]
        cursor = MultiCursor.decode(fields["id"])
        self.sequences[job_id].append(cursor.sequences[job_key(job_id)])
        self.events[job_id].append(fields["event"])
        self.cursor = fields["id"]
        self.first_event.set()


async def test_jobs_survive_random_sigkills_with_exact_resume(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        bridge=True,
        env={"REELCAST_MAX_CONCURRENT_JOBS": "2", "REELCAST_MAX_ATTEMPTS": "50"},
    )
    server.start()
    rng = random.Random(1234)
    try:
        async with httpx.AsyncClient(base_url=server.http_base, timeout=30) as client:
            job_ids = []
            for index in range(JOBS):
                body = {
                    "brief": {"topic": f"Crash test {index}: otters"},
                    "plan": {"targetDurationSeconds": 3},
                    "render": {"width": 320, "height": 180},
                }
                response = await client.post("/api/jobs", json=body)
                assert response.status_code == 201, response.text
                job_ids.append(response.json()["jobId"])
        follower = Follower(server, job_ids)
        following = asyncio.create_task(follower.run())
        await asyncio.wait_for(follower.first_event.wait(), 120)
        for cycle in range(CYCLES):
            await asyncio.sleep(rng.uniform(0.0, 0.2) if cycle == 0 else rng.uniform(0.2, 1.5))
            server.kill()
            await asyncio.to_thread(server.start)
        await asyncio.wait_for(following, 600)

        async with httpx.AsyncClient(base_url=server.http_base, timeout=30) as client:
            for job_id in job_ids:
                sequences = follower.sequences[job_id]
                assert sequences == list(range(1, len(sequences) + 1)), f"gap or duplicate in {job_id}"
                kinds = follower.events[job_id]
                assert sum(kind in TERMINAL for kind in kinds) == 1
                assert kinds[-1] in TERMINAL
                job = (await client.get(f"/api/jobs/{job_id}")).json()
                assert job["status"] in ("Succeeded", "Failed")
                if kinds[-1] == "job-completed":
                    assert job["status"] == "Succeeded"
                    video = Path(job["output"]["videoPath"])
                    assert decode_exit_code(video) == 0
            listing = (await client.get("/api/jobs", params={"pageSize": 100})).json()
            assert all(job["status"] not in ("Queued", "Running") for job in listing["jobs"])
        assert follower.reconnects >= 1
    finally:
        server.stop()
