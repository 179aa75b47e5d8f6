"""The web page: ``/`` serves ``static/index.html`` and ``/static/`` its ES modules and CSS (no build step,
nothing from a CDN), plus the small routes only the page needs: the voices, who is logged in, and the login
link's confirmation.

These routes are kept out of ``app.ROUTES`` on purpose: that list is the documented REST surface that
``/api/openapi.json`` describes route by route, and a static mount is not an API.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from reelcast.bridge import login, voices

STATIC_DIR = Path(__file__).parent / "static"


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate on every load (cheap with ETag / 304), so an upgraded server
    never runs a page made of old and new modules."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


ROUTES: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=_RevalidatedStaticFiles(directory=STATIC_DIR), name="static"),
    Route("/api/voices", voices.list_voices, methods=["GET"]),
    Route("/api/me", login.current_user, methods=["GET"]),
    # The login link's confirmation page (bridge/login.py) posts here.
    Route("/login", login.confirm_login, methods=["POST"]),
]
