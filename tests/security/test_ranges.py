"""Byte ranges an attacker picks: numbers past any file offset are 416 for the owner, never a 500, and another
user's job stays 404 whatever the Range says."""

from __future__ import annotations

import pytest

from tests.security.conftest import Secured

# A file offset is a signed 64-bit number, so the last byte any file can have is 2**63 - 2.
HUGE_RANGES = [
    "bytes=0-9223372036854775807",
    "bytes=0-99999999999999999999999999",
    "bytes=9223372036854775807-",
    "bytes=5-9223372036854775807",
    "bytes=99999999999999999999999999-99999999999999999999999999",
]


@pytest.mark.parametrize("header", HUGE_RANGES)
async def test_a_range_past_any_file_offset_is_416_for_the_owner_and_404_for_anyone_else(
    secured: Secured, header: str
) -> None:
    job = await secured.create_job("alice")
    await secured.finish("alice", job.id)
    url = f"/api/jobs/{job.id}/output"
    size = len((await secured.http("alice").get(url)).content)

    mine = await secured.http("alice").get(url, headers={"Range": header})
    assert mine.status_code == 416, mine.text
    assert mine.json()["errorCode"] == "E006-RANGE_NOT_SATISFIABLE"
    assert mine.headers["content-range"] == f"bytes */{size}"

    theirs = await secured.http("bob").get(url, headers={"Range": header})
    assert theirs.status_code == 404, theirs.text
    assert theirs.json()["errorCode"] == "E003-JOB_NOT_FOUND"
    assert "content-range" not in theirs.headers


async def test_a_suffix_longer_than_any_file_is_the_whole_file(secured: Secured) -> None:
    job = await secured.create_job("alice")
    await secured.finish("alice", job.id)
    url = f"/api/jobs/{job.id}/output"
    whole = (await secured.http("alice").get(url)).content
    response = await secured.http("alice").get(url, headers={"Range": "bytes=-99999999999999999999999"})
    assert response.status_code == 206, response.text
    assert response.content == whole
    assert response.headers["content-range"] == f"bytes 0-{len(whole) - 1}/{len(whole)}"
    theirs = await secured.http("bob").get(url, headers={"Range": "bytes=-99999999999999999999999"})
    assert theirs.status_code == 404, theirs.text
