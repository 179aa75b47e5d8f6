"""Byte ranges an attacker picks: numbers past any file offset are 416 for the owner, never a 500, and another
user's job stays 404 whatever the Range says."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.security.conftest import HANG_TIMEOUT, Secured

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


# Positions around the boundaries where range code breaks, and numbers of any size.
POSITIONS = st.one_of(
    st.sampled_from([0, 1, 2**31, 2**32, 2**63 - 2, 2**63 - 1, 2**63, 2**64]),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=0),
)
RANGES = st.one_of(
    st.tuples(st.one_of(st.just(0), POSITIONS), POSITIONS),
    st.tuples(POSITIONS, st.none()),
    st.tuples(st.none(), POSITIONS),
)
LARGEST_POSITION = 2**63 - 2


def expected_answer(first: int | None, last: int | None, size: int) -> tuple[int, int, int]:
    """(status, start, end) that RFC 9110 and docs/api.md prescribe for ``bytes=first-last``."""
    if first is not None and last is not None and last < first:
        return 200, 0, size - 1  # not a valid range: ignored
    if first is None:
        assert last is not None
        return (416, 0, 0) if last == 0 else (206, max(0, size - last), size - 1)
    if first > LARGEST_POSITION or (last is not None and last > LARGEST_POSITION) or first >= size:
        return 416, 0, 0
    return 206, first, size - 1 if last is None else min(last, size - 1)


async def test_any_range_gets_its_rfc_answer_for_the_owner_and_404_for_anyone_else(secured: Secured) -> None:
    job = await secured.create_job("alice")
    await secured.finish("alice", job.id)
    url = f"{secured.base_url}/api/jobs/{job.id}/output"
    keys = secured.keys

    def check_all() -> None:
        with (
            httpx.Client(headers={"Authorization": f"Bearer {keys['alice']}"}, timeout=HANG_TIMEOUT) as alice,
            httpx.Client(headers={"Authorization": f"Bearer {keys['bob']}"}, timeout=HANG_TIMEOUT) as bob,
        ):
            whole = alice.get(url).content

            @given(bounds=RANGES)
            @example(bounds=(0, 2**63 - 1))
            @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def answers(bounds: tuple[int | None, int | None]) -> None:
                first, last = bounds
                header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
                status, start, end = expected_answer(first, last, len(whole))
                response = alice.get(url, headers={"Range": header})
                assert response.status_code == status, (header, response.text)
                if status == 416:
                    assert response.headers["content-range"] == f"bytes */{len(whole)}"
                else:
                    assert response.content == whole[start : end + 1], header
                assert bob.get(url, headers={"Range": header}).status_code == 404, header

            answers()

    await asyncio.to_thread(check_all)
