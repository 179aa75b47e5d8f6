"""A worker given a subtask order it cannot run, as a job's worker or a stray publish could leave one.

A worker that cannot bring a subtask's inputs (nats/subtasks.py): the order names a file the job's files
do not hold. The real worker process fails the subtask with the reason on its stderr lines, records the
result and acknowledges it, rather than taking it again forever or running the program without its input.
The order is written here as a job's worker writes it (the attempt in ``subtasks.<job>``, the message on
the job's subject)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import nats
from nats.aio.msg import Msg

from reelcast.server.storage.fairness import PRIORITY_NAMES, priority_rank
from reelcast.server.storage.nats.layout import STATE_BUCKET, WORK_STREAM, work_subject
from tests.nats.natsproc import NatsServer
from tests.nats.processes import worker

HANG_TIMEOUT = 60.0


async def test_a_subtask_whose_inputs_are_missing_fails_once_with_the_reason(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    process = worker(tmp_path, "worker", nats_server.url, {"REELCAST_NATS_ACK_WAIT": "2"})
    process.start()
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        state = await js.key_value(STATE_BUCKET)
        job_id, attempt = uuid.uuid4().hex, uuid.uuid4().hex[:12]
        await state.put(f"subtasks.{job_id}", json.dumps({"attempt": attempt, "results": {}}).encode())
        prefix = f"reelcast.subtask.{job_id}.{attempt}"
        errors: list[str] = []

        async def lines(message: Msg) -> None:
            errors.extend(json.loads(message.data)["err"])

        await client.subscribe(f"{prefix}.part-0.lines", cb=lines)
        ran = tmp_path / "ran.txt"
        order = {
            "job": job_id,
            "attempt": attempt,
            "name": "part-0",
            # Would leave a mark if it ran without its input.
            "argv": [sys.executable, "-c", f"open({str(ran)!r}, 'w').write('ran')"],
            "inputs": ["never-shared.txt"],
            "links": {},
            "outputs": [],
            "graceful_stop": "",
            "kill_after": 2.0,
            "timeout": None,
        }
        subject = f"{work_subject('', PRIORITY_NAMES[priority_rank(0)])}.{job_id}"
        await js.publish(subject, json.dumps(order).encode())

        async def result() -> dict[str, object]:
            while True:
                document = json.loads((await state.get(f"subtasks.{job_id}")).value or b"{}")
                if "part-0" in document["results"]:
                    found: dict[str, object] = document["results"]["part-0"]
                    return found
                await asyncio.sleep(0.1)

        outcome = await asyncio.wait_for(result(), HANG_TIMEOUT)
        assert outcome["returncode"] == 127 and not outcome["cancelled"]
        await asyncio.sleep(3 * 2)  # past the ack wait: a subtask not acknowledged would come back
        log = process.log()
        assert log.count(f"subtask part-0 of job {job_id} (attempt") == 1, log  # taken once
        assert log.count(f"subtask part-0 of job {job_id} ended with 127") == 1, log
        info = await js.stream_info(WORK_STREAM, subjects_filter=subject)
        assert not info.state.subjects, "the subtask is still in the work queue"
        assert any("could not be brought" in line and "never-shared.txt" in line for line in errors), errors
        assert not ran.exists()
    finally:
        await client.close()
        process.stop()


async def test_a_malformed_subtask_order_is_dropped_and_the_worker_keeps_working(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    process = worker(tmp_path, "worker", nats_server.url, {"REELCAST_NATS_ACK_WAIT": "2"})
    process.start()
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        job_id = uuid.uuid4().hex
        subject = f"{work_subject('', PRIORITY_NAMES[priority_rank(0)])}.{job_id}"
        await js.publish(subject, b"{not json")
        await js.publish(subject, json.dumps({"job": job_id, "name": "part-0"}).encode())

        async def drained() -> None:
            while True:
                if not (await js.stream_info(WORK_STREAM, subjects_filter=subject)).state.subjects:
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(drained(), HANG_TIMEOUT)
        log = process.log()
        assert log.count("subtask order of job") == 2, log
        assert process.process is not None and process.process.poll() is None  # still running
    finally:
        await client.close()
        process.stop()
