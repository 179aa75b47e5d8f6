"""``GET /api/voices``: the voices the server's voice stage can speak with, for the web page's voice list.

They come from ``JobService.ListVoices``, so a bridge on another machine lists the voices of the server
that runs the jobs, and loads no speech engine of its own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reelcast.bridge.state import bridge_state, grpc_metadata
from reelcast.jobs.v1 import job_service_pb2


async def list_voices(request: Request) -> Response:
    """``{"voices": [{"key", "name", "languages", "engine", "quality"}]}`` sorted by key; ``key`` is what
    ``voice.voiceName`` takes. An empty ``voiceName`` means the default voice of the brief's language."""
    reply = await bridge_state(request).jobs.ListVoices(
        job_service_pb2.ListVoicesRequest(), metadata=grpc_metadata()
    )
    voices = [
        {
            "key": v.key,
            "name": v.name,
            "languages": list(v.languages),
            "engine": v.engine,
            "quality": v.quality,
        }
        for v in reply.voices
    ]
    return JSONResponse({"voices": voices}, headers={"Cache-Control": "private, max-age=3600"})
