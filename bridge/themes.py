"""``GET /api/themes`` and ``GET /api/themes/{name}/preview.png``: the visual themes ``plan.style`` may name,
with a preview of each, for the web page's theme picker and any client.

They come from ``JobService.ListThemes``, so a bridge on another machine lists the themes of the server that
runs the jobs and draws nothing itself.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from reelcast.bridge.problems import ApiError
from reelcast.bridge.rest import struct_response
from reelcast.bridge.state import bridge_state, grpc_metadata
from reelcast.jobs import errors
from reelcast.jobs.resources import Theme, ThemeList
from reelcast.jobs.v1 import job_service_pb2

# The themes change only with the server's installation.
CACHE_CONTROL = "private, max-age=3600"


async def _themes(request: Request) -> list[job_service_pb2.Theme]:
    reply = await bridge_state(request).jobs.ListThemes(
        job_service_pb2.ListThemesRequest(), metadata=grpc_metadata()
    )
    return list(reply.themes)


async def list_themes(request: Request) -> Response:
    """``{"themes": [{"name", "title", "description", "previewUrl"}]}``, the default first."""
    themes = [
        Theme(t.name, t.title, t.description, f"/api/themes/{quote(t.name, safe='')}/preview.png")
        for t in await _themes(request)
    ]
    return struct_response(ThemeList(themes), headers={"Cache-Control": CACHE_CONTROL})


async def theme_preview(request: Request) -> Response:
    """The PNG preview of one theme; 400 ``E405-UNKNOWN_THEME`` for a name the server has no theme of."""
    name = request.path_params["name"]
    for theme in await _themes(request):
        if theme.name == name:
            return Response(
                theme.preview_png, media_type="image/png", headers={"Cache-Control": CACHE_CONTROL}
            )
    raise ApiError(errors.UNKNOWN_THEME, f"There is no visual theme {name!r}.")
