"""Login CSRF: a foreign page cannot log a browser into another account. ``POST /api/session`` takes JSON
only, from the bridge's own origin (the scheme counts); the ``/login?key=`` link asks before it replaces a
session, and when it was followed from another site."""

from __future__ import annotations

import httpx

from reelcast.bridge.auth import SESSION_COOKIE
from tests.security.conftest import HANG_TIMEOUT, Secured


def _client(secured: Secured) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=secured.base_url, timeout=HANG_TIMEOUT)


async def _as_alice(secured: Secured) -> httpx.AsyncClient:
    client = _client(secured)
    opened = await client.post("/api/session", json={"apiKey": secured.keys["alice"]})
    assert opened.status_code == 201
    return client


async def _who(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/me")
    assert response.status_code == 200, response.text
    user: str = response.json()["user"]
    return user


async def test_a_session_is_opened_only_from_json(secured: Secured) -> None:
    client = await _as_alice(secured)
    try:
        bob = secured.keys["bob"]
        bodies = [
            {"content": f'{{"apiKey": "{bob}"}}', "headers": {"Content-Type": "text/plain"}},
            {"data": {"apiKey": bob}},  # a form: application/x-www-form-urlencoded
            {"content": f'{{"apiKey": "{bob}"}}', "headers": {"Content-Type": "multipart/form-data; b=x"}},
        ]
        for body in bodies:
            refused = await client.post("/api/session", **body)  # type: ignore[arg-type]
            assert refused.status_code == 415, refused.text
            assert refused.json()["errorCode"] == "E012-UNSUPPORTED_MEDIA_TYPE"
            assert "set-cookie" not in refused.headers
        assert await _who(client) == "alice"
    finally:
        await client.aclose()


async def test_a_session_is_opened_only_from_the_bridges_own_origin(secured: Secured) -> None:
    client = await _as_alice(secured)
    try:
        own = secured.base_url
        foreign = [
            {"Origin": "https://evil.example"},
            {"Origin": own.replace("http://", "https://")},  # same host and port, another scheme
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ]
        for headers in foreign:
            refused = await client.post("/api/session", json={"apiKey": secured.keys["bob"]}, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["errorCode"] == "E024-ORIGIN_NOT_ALLOWED"
            assert "set-cookie" not in refused.headers
        assert await _who(client) == "alice"
        for headers in ({"Origin": own}, {"Sec-Fetch-Site": "same-origin"}):
            fresh = _client(secured)
            try:
                opened = await fresh.post(
                    "/api/session", json={"apiKey": secured.keys["bob"]}, headers=headers
                )
                assert opened.status_code == 201, opened.text
                assert await _who(fresh) == "bob"
            finally:
                await fresh.aclose()
    finally:
        await client.aclose()


async def test_the_login_link_asks_before_replacing_a_session_or_when_followed_from_another_site(
    secured: Secured,
) -> None:
    bob = secured.keys["bob"]
    client = await _as_alice(secured)
    try:
        # Over alice's session: a page naming both users, and alice stays logged in.
        asked = await client.get("/login", params={"key": bob}, headers={"Sec-Fetch-Site": "none"})
        assert asked.status_code == 200 and "set-cookie" not in asked.headers
        assert "text/html" in asked.headers["content-type"]
        assert "bob" in asked.text and "alice" in asked.text
        assert await _who(client) == "alice"
        # The confirmation's form must come from the bridge's own page.
        forged = await client.post("/login", data={"key": bob}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and forged.json()["errorCode"] == "E024-ORIGIN_NOT_ALLOWED"
        assert await _who(client) == "alice"
        confirmed = await client.post("/login", data={"key": bob}, headers={"Origin": secured.base_url})
        assert confirmed.status_code == 303 and SESSION_COOKIE in confirmed.headers["set-cookie"]
        assert await _who(client) == "bob"
    finally:
        await client.aclose()
    fresh = _client(secured)
    try:
        # Followed from another site (which sends no SameSite=Strict cookie): it asks even without a session.
        asked = await fresh.get("/login", params={"key": bob}, headers={"Sec-Fetch-Site": "cross-site"})
        assert asked.status_code == 200 and "set-cookie" not in asked.headers and "bob" in asked.text
        # Opened by the user (typed or pasted) without a session: it logs in at once.
        landed = await fresh.get("/login", params={"key": bob}, headers={"Sec-Fetch-Site": "none"})
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        assert await _who(fresh) == "bob"
    finally:
        await fresh.aclose()
