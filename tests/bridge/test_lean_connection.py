"""The lean parts of the bridge's HTTP protocol (bridge/http_protocol.py) that stand in for uvicorn's
``asyncio.Event``s and pipelining deque: the same behaviour, checked alone and on a real bridge."""

from __future__ import annotations

import asyncio

import pytest

from reelcast.bridge.http_protocol import LeanEvent, LeanPipeline
from tests.bridge.conftest import HANG_TIMEOUT


async def test_a_lean_event_wakes_every_waiter_once_set_and_forgets_a_cancelled_one() -> None:
    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert len(event._waiters) == 3
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), HANG_TIMEOUT) == [True, True, True]
    assert event.is_set() and await event.wait()  # set: returns at once
    event.clear()
    later = asyncio.create_task(event.wait())
    await asyncio.sleep(0.05)
    assert not later.done()
    event.set()
    assert await asyncio.wait_for(later, HANG_TIMEOUT)


def test_a_lean_pipeline_is_first_in_first_out_like_uvicorns_deque() -> None:
    pipeline = LeanPipeline()
    assert not pipeline
    for item in ("first", "second", "third"):
        pipeline.appendleft(item)
    assert len(pipeline) == 3
    assert [pipeline.pop() for _ in range(3)] == ["first", "second", "third"]
    assert not pipeline


async def test_pipelined_requests_on_one_connection_are_answered_in_order(bridge_url: str) -> None:
    host, port = bridge_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\nGET /nope HTTP/1.1\r\nHost: {host}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    statuses = []
    for _ in range(2):
        status = await asyncio.wait_for(reader.readline(), HANG_TIMEOUT)
        statuses.append(status.split()[1])
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), HANG_TIMEOUT)) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    writer.close()
    assert statuses == [b"200", b"404"]
