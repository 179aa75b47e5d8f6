"""``GET /api/voices``: the voices the server's voice stage speaks with, asked of the server over gRPC
(``ListVoices``), so that a bridge on another machine lists the server's voices, not its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from reelcast.jobs.v1 import job_service_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT
from tests.launcher import ReelcastProcess

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


async def _voices_of_the_server(stub: Stub) -> list[dict[str, object]]:
    reply = await stub.ListVoices(job_service_pb2.ListVoicesRequest())
    return [
        {
            "key": v.key,
            "name": v.name,
            "languages": list(v.languages),
            "engine": v.engine,
            "quality": v.quality,
        }
        for v in reply.voices
    ]


async def test_the_voice_list_is_the_servers_sorted_by_key_and_cached_for_an_hour(
    client: httpx.AsyncClient, stub: Stub
) -> None:
    response = await client.get("/api/voices")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=3600"
    voices = response.json()["voices"]
    assert voices == await _voices_of_the_server(stub)
    assert [voice["key"] for voice in voices] == sorted(voice["key"] for voice in voices)
    assert {
        "key": "en-us",
        "name": "English (America)",
        "languages": ["en-us", "en"],
        "engine": "espeak-ng",
        "quality": "low",
    } in voices
    assert {
        "key": "en-us-joe",
        "name": "Joe, English (America)",
        "languages": ["en-us", "en"],
        "engine": "piper",
        "quality": "medium",
    } in voices


async def test_a_bridge_without_espeak_of_its_own_lists_the_voices_of_the_server(
    server: ReelcastServer, stub: Stub, tmp_path: Path
) -> None:
    # The bridge's machine has no espeak-ng data (here: a data path that does not exist); the server's has.
    bridge = ReelcastProcess(
        "bridge",
        ["--grpc-target", server.target, "--http-listen", "127.0.0.1:0"],
        tmp_path / "bridge.log",
        {"REELCAST_ESPEAK_DATA": str(tmp_path / "no-espeak-here")},
    )
    try:
        base = await asyncio.to_thread(bridge.start, HANG_TIMEOUT)
        async with httpx.AsyncClient(base_url=base, timeout=HANG_TIMEOUT) as client:
            response = await client.get("/api/voices")
    finally:
        bridge.stop()

    assert response.status_code == 200, bridge.output()
    voices = response.json()["voices"]
    assert voices and voices == await _voices_of_the_server(stub)
