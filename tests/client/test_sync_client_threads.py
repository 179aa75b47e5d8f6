"""The sync Client's life around threads and event loops: it leaves no thread behind, works inside a running
event loop, can be shared by threads, stops its streams when an iterator is closed early or the client is
closed from another thread, and gives a Ctrl+C back to the caller at once, with the call cancelled."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from reelcast.client import CallCancelledError, Client, is_terminal
from reelcast.jobs.v1 import job_pb2
from reelcast.server.app import ReelcastServer
from tests.client.conftest import HANG_TIMEOUT

T = TypeVar("T")


async def _blocking(function: Callable[[], T]) -> T:
    return await asyncio.wait_for(asyncio.to_thread(function), HANG_TIMEOUT)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(HANG_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - the server's bookkeeping has no event to wait on
            await asyncio.sleep(0.02)


async def _stays(condition: Callable[[], bool], polls: int = 10) -> bool:
    for _ in range(polls):
        if not condition():
            return False
        await asyncio.sleep(0.02)
    return True


_LEAVES_NO_THREAD = textwrap.dedent(
    """
    import gc, sys, threading
    from reelcast.client import Client, is_terminal

    before = set(threading.enumerate())
    unused = Client(sys.argv[1])
    print("threads of an unused client", len(set(threading.enumerate()) - before))
    unused.close()
    with Client(sys.argv[1]) as client:
        job = client.create_job(topic="No thread left")
        assert is_terminal(list(client.watch_job(job.id))[-1])
        early = client.watch_job(job.id)
        next(early)
        early.close()
        assert list(client.read_artifact(job.id, "video"))
    print("threads left", sorted(thread.name for thread in set(threading.enumerate()) - before))
    dropped = Client(sys.argv[1])
    dropped.list_stages()
    del dropped
    gc.collect()
    print("threads left by a dropped client", len(set(threading.enumerate()) - before))
    forgotten = Client(sys.argv[1])
    forgotten.list_stages()  # never closed: the process must exit all the same
    """
)


async def _run_child(script: str, *args: str) -> list[str]:
    """Runs ``script`` in a Python process of its own (whose threads are all the client's) and returns its
    output lines."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), HANG_TIMEOUT)
    assert child.returncode == 0, stderr.decode()
    assert stderr == b"", stderr.decode()
    return stdout.decode().splitlines()


async def test_leaving_the_with_block_leaves_no_thread_behind(open_server: ReelcastServer) -> None:
    assert await _run_child(_LEAVES_NO_THREAD, open_server.target) == [
        "threads of an unused client 0",
        "threads left []",
        "threads left by a dropped client 0",
    ]


async def test_the_sync_client_works_inside_a_running_event_loop(open_server: ReelcastServer) -> None:
    async def someone_elses_coroutine() -> list[job_pb2.JobProgress]:
        with Client(open_server.target) as client:
            job = client.create_job(topic="Called from a coroutine")
            return list(client.watch_job(job.id))

    # Another event loop, in another thread, since this test's loop serves the server.
    events = await _blocking(lambda: asyncio.run(someone_elses_coroutine()))
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert is_terminal(events[-1])


async def test_threads_share_one_client(open_server: ReelcastServer) -> None:
    def scenario() -> list[list[job_pb2.JobProgress]]:
        with Client(open_server.target) as client:
            results: list[list[job_pb2.JobProgress]] = [[] for _ in range(4)]

            def work(index: int) -> None:
                job = client.create_job(topic=f"thread {index}")
                results[index] = list(client.watch_job(job.id))

            threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(HANG_TIMEOUT)
            return results

    results = await _blocking(scenario)
    assert len({events[0].job_id for events in results}) == 4
    for events in results:
        assert [event.sequence for event in events] == list(range(1, len(events) + 1))
        assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED


async def test_closing_a_watch_iterator_early_ends_its_stream_on_the_server(
    hanging_server: ReelcastServer,
) -> None:
    client = Client(hanging_server.target)
    try:
        job = await _blocking(lambda: client.create_job(topic="Left while hanging"))
        watch = client.watch_job(job.id)
        while (await _blocking(lambda: next(watch))).message != "hanging":
            pass
        waiting = hanging_server.notifier._waiters
        assert job.id in waiting, "the watch is not waiting on the server"
        await _blocking(watch.close)
        await _until(lambda: job.id not in waiting)
        assert await _stays(lambda: job.id not in waiting), "the server still streams to a closed watch"
        await _blocking(lambda: client.cancel_job(job.id))
    finally:
        await _blocking(client.close)


async def test_closing_the_client_from_another_thread_ends_a_running_watch(
    hanging_server: ReelcastServer,
) -> None:
    client = Client(hanging_server.target)
    job = await _blocking(lambda: client.create_job(topic="Closed from elsewhere"))
    hanging = threading.Event()

    def watch() -> BaseException | None:
        try:
            for event in client.watch_job(job.id):
                if event.message == "hanging":
                    hanging.set()
        except BaseException as error:
            return error
        return None

    watching = asyncio.ensure_future(_blocking(watch))
    await _blocking(lambda: hanging.wait(HANG_TIMEOUT))
    await _blocking(client.close)
    assert isinstance(await watching, CallCancelledError)
    with pytest.raises(RuntimeError, match="closed"):
        client.get_job(job.id)
    with pytest.raises(RuntimeError, match="closed"):
        next(client.watch_job(job.id))


async def test_closing_the_client_ends_an_open_watch_iterator_with_call_cancelled(
    hanging_server: ReelcastServer,
) -> None:
    def scenario() -> None:
        client = Client(hanging_server.target)
        job = client.create_job(topic="Closed between two events")
        watch = client.watch_job(job.id)
        next(watch)
        client.close()
        with pytest.raises(CallCancelledError):
            for _ in watch:
                pass

    await _blocking(scenario)


_INTERRUPTED_WATCH = textwrap.dedent(
    """
    import sys, threading
    from reelcast.client import Client

    before = set(threading.enumerate())
    with Client(sys.argv[1]) as client:
        try:
            for event in client.watch_job(sys.argv[2]):
                if event.message == "hanging":
                    print("hanging", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        # The client still works after the interrupted call.
        print("status", client.get_job(sys.argv[2]).status, flush=True)
    print("threads left", len(set(threading.enumerate()) - before), flush=True)
    """
)


async def test_ctrl_c_interrupts_a_blocking_watch_and_cancels_its_stream(
    hanging_server: ReelcastServer,
) -> None:
    client = Client(hanging_server.target)
    try:
        job = await _blocking(lambda: client.create_job(topic="Interrupted"))
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _INTERRUPTED_WATCH,
            hanging_server.target,
            job.id,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        async with asyncio.timeout(HANG_TIMEOUT):
            assert await child.stdout.readline() == b"hanging\n"
        waiting = hanging_server.notifier._waiters
        assert job.id in waiting
        child.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(child.communicate(), HANG_TIMEOUT)
        assert child.returncode == 0, stderr.decode()
        assert stdout.decode().splitlines() == [
            "interrupted",
            f"status {job_pb2.JOB_STATUS_RUNNING}",
            "threads left 0",
        ]
        await _until(lambda: job.id not in waiting)
        await _blocking(lambda: client.cancel_job(job.id))
    finally:
        await _blocking(client.close)
