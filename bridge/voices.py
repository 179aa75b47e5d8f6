"""``GET /api/voices``: the voices the built-in voice stage can speak with, for the web page's voice list.

Intentional divergence: the list comes from the espeak-ng binding loaded in the bridge process, not from
``JobService``, because no RPC lists voices yet. It is right when the bridge and the server share one
installation (``reelcast serve``, or a bridge installed beside the server); a ``ListVoices`` RPC is the
proper fix for a bridge on another machine, and would also cover voices of third-party stages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reelcast.plugins.builtin import espeak
from reelcast.server.config import Settings

log = logging.getLogger(__name__)


@functools.cache
def _voices(data_path: str | None) -> tuple[dict[str, Any], ...]:
    try:
        voices = espeak.available_voices(data_path)
    except espeak.EspeakError:
        log.warning("espeak-ng is not available; the voice list is empty", exc_info=True)
        return ()
    return tuple({"key": v.key, "name": v.name, "languages": list(v.languages)} for v in voices)


async def list_voices(request: Request) -> Response:
    """``{"voices": [{"key", "name", "languages"}]}`` sorted by key; ``key`` is what ``voice.voiceName``
    takes. An empty ``voiceName`` means the default voice of the brief's language."""
    data_path = Settings.from_env().espeak_data_path
    voices = await asyncio.to_thread(_voices, data_path)
    return JSONResponse({"voices": list(voices)}, headers={"Cache-Control": "private, max-age=3600"})
