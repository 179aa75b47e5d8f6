"""``GET /api/themes`` and ``GET /api/themes/{name}/preview.png``: the server's visual themes (``ListThemes``)
with a PNG preview each, and CreateJob's ``E405-UNKNOWN_THEME`` as a problem."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from reelcast.plugins.builtin import visuals
from reelcast.server.app import ReelcastServer


@pytest.fixture
def with_visuals(server: ReelcastServer) -> None:
    server.host.register_builtin(visuals, "visuals")


@pytest.mark.usefixtures("with_visuals")
async def test_the_bridge_serves_the_theme_list_and_each_preview(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/themes")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=3600"
    themes = response.json()["themes"]
    assert [theme["name"] for theme in themes] == ["clean", "bold", "paper"]
    for theme in themes:
        assert set(theme) == {"name", "title", "description", "previewUrl"}
        preview = await client.get(theme["previewUrl"])
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(preview.content)).size == (320, 180)
    missing = await client.get("/api/themes/neon/preview.png")
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == "E405-UNKNOWN_THEME"


@pytest.mark.usefixtures("with_visuals")
async def test_the_bridge_answers_an_unknown_style_with_a_problem_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/jobs", json={"brief": {"topic": "Otters"}, "plan": {"style": "neon"}})
    assert response.status_code == 400
    problem = response.json()
    assert problem["errorCode"] == "E405-UNKNOWN_THEME"
    assert "neon" in problem["detail"]
