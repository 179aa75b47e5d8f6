"""``reelcast bridge --processes 2`` as a real child (bridge/processes.py): two bridge processes on one port,
each one serving its share of the connections; a child SIGKILLed is replaced while the other serves on; an
SSE stream resumed on whichever process takes the reconnect goes on with no gap and no duplicate; SIGTERM
stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, SseEvent, create_job, read_sse
from tests.launcher import ReelcastProcess, announcements
from tests.stages import PipelinePlugin

STREAMS = 24


def bridge_children(parent: int) -> set[int]:
    """The live bridge processes ``parent`` spawned (multiprocessing's resource tracker is another child)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # Fields after the command name, which may hold spaces: state, ppid, ...
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == parent and state != "Z" and b"spawn_main" in (entry / "cmdline").read_bytes():
                children.add(int(entry.name))
    return children


def connections_by_process(port: int, pids: set[int]) -> dict[int, int]:
    """How many established connections to ``port`` each of ``pids`` holds (from /proc, as ss does)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    held = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        count += 1
        held[pid] = count
    return held


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def test_two_bridge_processes_share_the_port_survive_a_killed_child_and_resume_exactly(
    server: ReelcastServer, tmp_path: Path
) -> None:
    pipeline = PipelinePlugin(delay=0.05, hold_at="postprocess")  # jobs stay running until released
    server.host.register(pipeline, "pipeline")
    bridge = ReelcastProcess(
        "bridge",
        ["--grpc-target", server.target, "--http-listen", "127.0.0.1:0", "--processes", "2"],
        tmp_path / "bridge.log",
        # Each process counts a user's SSE connections alone (bridge/processes.py); here all are one user's.
        {"REELCAST_MAX_SSE_PER_USER": str(STREAMS)},
    )
    await asyncio.to_thread(bridge.start, HANG_TIMEOUT)
    try:
        assert bridge.ready is not None and bridge.process is not None
        announced = set(bridge.ready.fields["processes"])
        assert len(announced) == 2
        assert bridge_children(bridge.process.pid) == announced
        base = bridge.http_base
        port = int(base.rsplit(":", 1)[1])

        async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
            job = await create_job(client)
        url = f"/api/jobs/{job['jobId']}/events"

        # Streams held open, each on a connection of its own: the kernel spreads them over both.
        async with contextlib.AsyncExitStack() as held:
            readers = []  # kept: a reader dropped would be closed, and its connection with it
            for _ in range(STREAMS):
                own = await held.enter_async_context(httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT))
                response = await held.enter_async_context(own.stream("GET", url))
                assert response.status_code == 200
                readers.append(response.aiter_bytes())
                await anext(readers[-1])  # the first frame: the stream is served
            shares = connections_by_process(port, announced)
            assert sum(shares.values()) == STREAMS, shares
            assert all(share > 0 for share in shares.values()), shares

            killed = min(announced)
            os.kill(killed, signal.SIGKILL)
            parent = bridge.process.pid

            def replaced() -> bool:
                children = bridge_children(parent)
                return len(children) == 2 and killed not in children

            await until(replaced, "the killed bridge process to be replaced")

        # New connections are served, by whichever process takes them.
        for _ in range(20):
            async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as fresh:
                assert (await fresh.get(f"/api/jobs/{job['jobId']}")).status_code == 200

        # Resumed in three cuts, each on a new connection: ids go on exactly, whichever process answers.
        received: list[SseEvent] = []
        for cut in (3, 6):
            headers = {"Last-Event-ID": received[-1].id} if received else None
            async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as fresh:
                received += (await read_sse(fresh, url, headers=headers, max_events=cut)).events
        pipeline.release.set()
        async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as fresh:
            received += (await read_sse(fresh, url, headers={"Last-Event-ID": received[-1].id})).events
        assert [int(event.id) for event in received] == list(range(1, len(received) + 1))
        assert received[-1].event == "job-completed"

        children = bridge_children(bridge.process.pid)
        assert await asyncio.to_thread(bridge.terminate, HANG_TIMEOUT) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)
        assert [announced.event for announced in announcements(bridge.output())] == ["ready", "stopped"]
    finally:
        bridge.stop()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_process_count_below_one_is_refused_with_the_variable(tmp_path: Path, value: str) -> None:
    bridge = ReelcastProcess("bridge", [], tmp_path / "bridge.log", {"REELCAST_BRIDGE_PROCESSES": value})
    with pytest.raises(RuntimeError):
        bridge.start(HANG_TIMEOUT)
    assert bridge.process is not None and bridge.process.wait(HANG_TIMEOUT) == 2
    assert "REELCAST_BRIDGE_PROCESSES" in bridge.output()
