"""The REST surface: creating, listing, reading and cancelling jobs, artifacts with byte ranges, and one
error body for every bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelcast.bridge.app import ROUTES
from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import BigOutputPlugin, create_job, read_sse
from tests.stages import PipelinePlugin

PROBLEM_FIELDS = {"type", "title", "status", "detail", "errorCode", "correlationId"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["errorCode"] == code
    assert errors.CATALOGUE[code].http_status == status
    assert body["correlationId"] == response.headers["x-correlation-id"]
    return body


async def finish(client: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    events = (await read_sse(client, f"/api/jobs/{job_id}/events")).events
    assert events[-1].event in ("job-completed", "job-failed")
    body: dict[str, object] = (await client.get(f"/api/jobs/{job_id}")).json()
    return body


async def test_create_job_needs_only_a_topic_and_returns_201_with_defaults_and_the_correlation_id(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    response = await client.post(
        "/api/jobs", json={"brief": {"topic": "Tides"}}, headers={"X-Correlation-ID": "rest.create-1"}
    )
    assert response.status_code == 201
    job = response.json()
    assert response.headers["location"] == f"/api/jobs/{job['jobId']}"
    assert response.headers["x-correlation-id"] == "rest.create-1"
    assert job["correlationId"] == "rest.create-1"
    assert job["status"] in ("Queued", "Running")
    assert isinstance(job["stage"], str)
    assert job["spec"]["plan"]["targetDurationSeconds"] == 30
    assert job["spec"]["render"]["width"] == 1280
    assert job["spec"]["voice"]["rate"] == 160
    finished = await finish(client, job["jobId"])
    assert finished["status"] == "Succeeded"


async def test_create_job_maps_every_body_field_into_the_spec(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    body = {
        "brief": {
            "topic": "Bees",
            "audience": "kids",
            "goal": "wonder",
            "tone": "playful",
            "language": "en",
            "aspect": "9:16",
            "keyPoints": ["Bees dance to point the way.", "The hive keeps warm in winter."],
        },
        "plan": {"targetDurationSeconds": 12.5, "pacing": "Fast", "style": "clean"},
        "voice": {"voiceName": "en-us", "rate": 200, "pitch": 40},
        "render": {
            "width": 640,
            "height": 360,
            "fps": 24,
            "videoBitrateK": 800,
            "audioBitrateK": 96,
            "captions": True,
        },
        "script": [{"title": "One", "narration": "Bees dance.", "caption": "Dance"}],
    }
    response = await client.post("/api/jobs", json=body)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["brief"]["aspect"] == "9:16"
    assert spec["brief"]["keyPoints"] == ["Bees dance to point the way.", "The hive keeps warm in winter."]
    assert spec["plan"] == {"targetDurationSeconds": 12.5, "pacing": "Fast", "style": "clean"}
    assert spec["voice"] == {"voiceName": "en-us", "rate": 200, "pitch": 40}
    assert spec["render"]["videoBitrateK"] == 800
    assert spec["render"]["captionMode"] == "burned"
    assert spec["script"][0]["narration"] == "Bees dance."
    await finish(client, response.json()["jobId"])


async def test_caption_style_is_words_by_default_and_sentences_on_request(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    styles = {}
    for requested in (None, "sentences"):
        render: dict[str, object] = {"captions": True}
        if requested:
            render["captionStyle"] = requested
        response = await client.post("/api/jobs", json={"brief": {"topic": "Bees"}, "render": render})
        assert response.status_code == 201, response.text
        styles[requested] = response.json()["spec"]["render"]["captionStyle"]
        await finish(client, response.json()["jobId"])
    assert styles == {None: "words", "sentences": "sentences"}
    refused = await client.post(
        "/api/jobs", json={"brief": {"topic": "Bees"}, "render": {"captionStyle": "karaoke"}}
    )
    problem = assert_problem(refused, 400, "E001-INVALID_SPEC")
    assert "render.captionStyle" in [v["field"] for v in problem["violations"]]  # type: ignore[attr-defined]


async def test_the_music_mood_reaches_the_spec_and_an_unknown_mood_is_a_field_violation(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    response = await client.post("/api/jobs", json={"brief": {"topic": "Bees"}, "music": {"mood": "upbeat"}})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["music"] == {"mood": "upbeat", "mediaId": ""}
    await finish(client, response.json()["jobId"])
    refused = await client.post("/api/jobs", json={"brief": {"topic": "Bees"}, "music": {"mood": "loud"}})
    problem = assert_problem(refused, 400, "E001-INVALID_SPEC")
    assert "music.mood" in [v["field"] for v in problem["violations"]]  # type: ignore[attr-defined]


BAD_BODIES = [
    pytest.param(b'{"brief": {"topic": "x"', 400, "E002-INVALID_REQUEST", None, id="bad-json"),
    pytest.param(b'{"brief": {"topic": 42}}', 400, "E001-INVALID_SPEC", "brief.topic", id="wrong-type"),
    pytest.param(
        b'{"brief": {"topic": "x"}, "render": {"width": "wide"}}',
        400,
        "E001-INVALID_SPEC",
        "render.width",
        id="wrong-type-nested",
    ),
    pytest.param(
        b'{"brief": {"audience": "kids"}}', 400, "E001-INVALID_SPEC", "brief.topic", id="missing-topic"
    ),
    pytest.param(b'{"brief": {"topic": "   "}}', 400, "E001-INVALID_SPEC", "brief.topic", id="blank-topic"),
    pytest.param(
        b'{"brief": {"topic": "x"}, "plan": {"targetDurationSeconds": -5}}',
        400,
        "E001-INVALID_SPEC",
        "plan.targetDurationSeconds",
        id="negative-duration",
    ),
    pytest.param(
        b'{"brief": {"topic": "x"}, "render": {"width": 99999999999}}',
        400,
        "E001-INVALID_SPEC",
        "render.width",
        id="int-overflow",
    ),
    pytest.param(
        b'{"brief": {"topic": "x"}, "voice": {"rate": 5}}',
        400,
        "E001-INVALID_SPEC",
        "voice.rate",
        id="rate-out-of-range",
    ),
    pytest.param(
        b'{"brief": {"topic": "x"}, "colour": "red"}', 400, "E001-INVALID_SPEC", "colour", id="unknown-field"
    ),
    pytest.param(
        json.dumps({"brief": {"topic": "x", "keyPoints": ["fine", "   "]}}).encode(),
        400,
        "E001-INVALID_SPEC",
        "brief.keyPoints[1]",
        id="blank-key-point",
    ),
    pytest.param(
        json.dumps({"brief": {"topic": "x", "keyPoints": ["p"] * 21}}).encode(),
        400,
        "E001-INVALID_SPEC",
        "brief.keyPoints",
        id="too-many-key-points",
    ),
    pytest.param(
        json.dumps({"brief": {"topic": "x", "keyPoints": ["k" * 301]}}).encode(),
        400,
        "E001-INVALID_SPEC",
        "brief.keyPoints[0]",
        id="key-point-too-long",
    ),
    pytest.param(b"[1, 2]", 400, "E001-INVALID_SPEC", None, id="not-an-object"),
    pytest.param(
        b'{"brief": {"topic": "x"}} trailing', 400, "E002-INVALID_REQUEST", None, id="trailing-garbage"
    ),
    pytest.param(
        json.dumps({"brief": {"topic": "x", "goal": "y" * 70_000}}).encode(),
        413,
        "E008-BODY_TOO_LARGE",
        None,
        id="over-64-KiB",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_BODIES)
async def test_bad_bodies_get_a_documented_4xx_error_body(
    client: httpx.AsyncClient, body: bytes, status: int, code: str, field: str | None
) -> None:
    response = await client.post(
        "/api/jobs", content=body, headers={"Content-Type": "application/json", "X-Correlation-ID": "bad-1"}
    )
    problem = assert_problem(response, status, code)
    assert problem["correlationId"] == "bad-1"
    if field is not None:
        assert field in [v["field"] for v in problem["violations"]]  # type: ignore[attr-defined]


async def test_a_body_over_the_cap_is_refused_even_without_a_content_length(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 4096

    response = await client.post("/api/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "E008-BODY_TOO_LARGE")


async def test_a_body_that_is_not_json_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/jobs", content=b"topic=x", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415, "E012-UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/jobs/0123456789abcdef0123456789abcdef", 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/0123456789abcdef0123456789abcdef/events", 404, "E003-JOB_NOT_FOUND"),
        ("POST", "/api/jobs/nope/cancel", 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/nope/output", 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/%3Cscript%3E", 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/" + "a" * 300, 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/..%2F..%2Fetc%2Fpasswd/events", 404, "E010-ROUTE_NOT_FOUND"),
        ("GET", "/api/events?jobs=nope", 404, "E003-JOB_NOT_FOUND"),
        ("GET", "/api/jobs/a/b/c", 404, "E010-ROUTE_NOT_FOUND"),
        ("GET", "/api/%00%ff", 404, "E010-ROUTE_NOT_FOUND"),
        ("GET", "/etc/passwd", 404, "E010-ROUTE_NOT_FOUND"),
        ("DELETE", "/api/jobs", 405, "E011-METHOD_NOT_ALLOWED"),
        ("GET", "/api/jobs?pageSize=-1", 400, "E002-INVALID_REQUEST"),
        ("GET", "/api/jobs?pageSize=ten", 400, "E002-INVALID_REQUEST"),
        ("GET", "/api/jobs?status=Sleeping", 400, "E002-INVALID_REQUEST"),
        ("GET", "/api/jobs?pageToken=garbage", 400, "E002-INVALID_REQUEST"),
        ("GET", "/api/events?jobs=", 400, "E002-INVALID_REQUEST"),
    ],
)
async def test_unknown_jobs_and_path_junk_get_the_error_body_never_a_500(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, status, code)


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "9" * 40, "12 13"])
async def test_an_unparsable_last_event_id_is_400_before_the_stream_starts(
    client: httpx.AsyncClient, pipeline: PipelinePlugin, cursor: str
) -> None:
    job = await create_job(client)
    for kwargs in ({"headers": {"Last-Event-ID": cursor}}, {"params": {"lastEventId": cursor}}):
        response = await client.get(f"/api/jobs/{job['jobId']}/events", **kwargs)  # type: ignore[arg-type]
        assert_problem(response, 400, "E009-INVALID_EVENT_ID")
        response = await client.get(f"/api/events?jobs={job['jobId']}", **kwargs)  # type: ignore[arg-type]
        assert_problem(response, 400, "E009-INVALID_EVENT_ID")
    await finish(client, job["jobId"])


async def test_jobs_are_listed_newest_first_in_pages(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    created = [(await create_job(client, f"Topic {i}"))["jobId"] for i in range(3)]
    first = (await client.get("/api/jobs", params={"pageSize": "2"})).json()
    assert [j["jobId"] for j in first["jobs"]] == created[::-1][:2]
    assert first["nextPageToken"]
    second = (
        await client.get("/api/jobs", params={"pageSize": "2", "pageToken": first["nextPageToken"]})
    ).json()
    assert [j["jobId"] for j in second["jobs"]] == created[::-1][2:]
    assert second["nextPageToken"] == ""
    for job_id in created:
        await finish(client, job_id)
    succeeded = (await client.get("/api/jobs", params={"status": "Succeeded"})).json()
    assert {j["jobId"] for j in succeeded["jobs"]} == set(created)


async def create_labelled(client: httpx.AsyncClient, labels: dict[str, str]) -> str:
    response = await client.post("/api/jobs", json={"brief": {"topic": "Labelled"}, "labels": labels})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["labels"] == labels
    job_id: str = response.json()["jobId"]
    return job_id


async def test_labels_round_trip_and_the_label_filter_lists_only_jobs_carrying_every_label(
    client: httpx.AsyncClient, pipeline: PipelinePlugin
) -> None:
    prod = await create_labelled(client, {"team": "video", "env": "prod"})
    staging = await create_labelled(client, {"team": "video", "env": "staging"})
    await create_job(client, "Unlabelled")
    assert (await client.get(f"/api/jobs/{prod}")).json()["spec"]["labels"] == {
        "team": "video",
        "env": "prod",
    }

    async def listed(query: str) -> list[str]:
        response = await client.get(f"/api/jobs?{query}")
        assert response.status_code == 200, response.text
        return [job["jobId"] for job in response.json()["jobs"]]

    assert await listed("label=team=video&label=env=prod") == [prod]
    assert await listed("label=team=video,env=prod") == [prod]
    assert await listed("label=team=video") == [staging, prod]
    assert await listed("label=team=audio") == []
    body = assert_problem(await client.get("/api/jobs?label=team"), 400, "E002-INVALID_REQUEST")
    assert [v["field"] for v in body["violations"]] == ["label"]  # type: ignore[attr-defined]
    for job_id in (prod, staging):
        await finish(client, job_id)


async def test_labels_out_of_bounds_are_400_with_a_violation_on_labels(client: httpx.AsyncClient) -> None:
    too_many = {f"k{index}": "v" for index in range(17)}
    for labels in (too_many, {"Bad Key": "v"}, {"team": "v" * 64}):
        response = await client.post("/api/jobs", json={"brief": {"topic": "Otters"}, "labels": labels})
        body = assert_problem(response, 400, "E001-INVALID_SPEC")
        assert {v["field"] for v in body["violations"]} == {"labels"}  # type: ignore[attr-defined]


async def test_priority_round_trips_as_a_word_defaults_to_normal_and_refuses_another_word(
    client: httpx.AsyncClient, server: ReelcastServer, pipeline: PipelinePlugin
) -> None:
    response = await client.post("/api/jobs", json={"brief": {"topic": "Urgent"}, "priority": "high"})
    assert response.status_code == 201, response.text
    job_id = response.json()["jobId"]
    assert response.json()["spec"]["priority"] == "high"
    assert (await client.get(f"/api/jobs/{job_id}")).json()["spec"]["priority"] == "high"
    stored = await server.store.get_job(job_id)
    assert stored is not None and stored.spec.priority == job_pb2.JOB_PRIORITY_HIGH
    plain = await create_job(client, "Plain")
    assert plain["spec"]["priority"] == "normal"
    refused = await client.post("/api/jobs", json={"brief": {"topic": "Otters"}, "priority": "urgent"})
    assert refused.status_code == 400, refused.text
    for each in (job_id, plain["jobId"]):
        await finish(client, each)


async def test_cancel_is_202_while_running_and_409_once_finished(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    job = await create_job(client)
    response = await client.post(f"/api/jobs/{job['jobId']}/cancel")
    assert response.status_code == 202
    finished = await finish(client, job["jobId"])
    assert finished["status"] == "Failed"
    assert finished["cancelled"] is True
    assert [e["code"] for e in finished["errors"]] == ["E311-CANCELLED"]  # type: ignore[attr-defined]
    assert_problem(await client.post(f"/api/jobs/{job['jobId']}/cancel"), 409, "E004-JOB_ALREADY_FINISHED")


async def test_failure_details_of_a_failed_job_and_404_for_a_job_that_did_not_fail(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(PipelinePlugin(fail_at="render"), "pipeline")
    job = await create_job(client, **{"X-Correlation-ID": "fail-1"})
    events = (await read_sse(client, f"/api/jobs/{job['jobId']}/events")).events
    assert events[-1].event == "job-failed"
    assert events[-1].data["errors"][0]["code"] == "E309-STAGE_FAILED"
    details = (await client.get(f"/api/jobs/{job['jobId']}/failure-details")).json()
    assert details["errorCode"] == "E309-STAGE_FAILED"
    assert details["stage"] == "render"
    assert details["correlationId"] == "fail-1"
    assert "/secret/path" not in json.dumps(details)
    assert isinstance(details["suggestedActions"], list)

    server.host.unregister(name="pipeline")
    server.host.register(PipelinePlugin(), "pipeline")
    ok = await create_job(client)
    await finish(client, ok["jobId"])
    assert_problem(
        await client.get(f"/api/jobs/{ok['jobId']}/failure-details"), 404, "E014-NO_FAILURE_DETAILS"
    )


async def test_stages_and_health(client: httpx.AsyncClient, pipeline: PipelinePlugin) -> None:
    stages = (await client.get("/api/stages")).json()["stages"]
    assert [s["title"] for s in stages] == ["Script", "Voice", "Visuals", "Rendering", "Postprocessing"]
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


async def test_an_unreachable_grpc_server_is_503_with_the_error_body() -> None:
    import asyncio
    import socket

    from reelcast.bridge.app import create_app
    from reelcast.bridge.server import serve_app

    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead_target = f"127.0.0.1:{probe.getsockname()[1]}"
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_app(create_app(dead_target), "127.0.0.1:0", stop=stop, on_ready=ready.set_result)
    )
    try:
        port = await asyncio.wait_for(ready, 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert_problem(await client.get("/healthz"), 503, "E013-UPSTREAM_UNAVAILABLE")
            assert_problem(await client.get("/api/jobs"), 503, "E013-UPSTREAM_UNAVAILABLE")
            assert_problem(await client.get("/api/jobs/abc/events"), 503, "E013-UPSTREAM_UNAVAILABLE")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_openapi_describes_every_route_and_the_sse_events(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    served = set()
    for route in ROUTES:
        path = route.path.replace("{job_id}", "{jobId}")
        served |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    assert documented == served
    sse = document["paths"]["/api/jobs/{jobId}/events"]["get"]["responses"]["200"]["content"][
        "text/event-stream"
    ]
    assert set(sse["x-sse-events"]) == {
        "job-status",
        "step-status",
        "step-progress",
        "job-completed",
        "job-failed",
        "resync",
    }


async def test_output_ranges_are_206_with_content_range_and_the_exact_bytes(
    client: httpx.AsyncClient, server: ReelcastServer
) -> None:
    server.host.register(BigOutputPlugin(), "big")
    job = await create_job(client)
    finished = await finish(client, job["jobId"])
    video = Path(finished["output"]["videoPath"])  # type: ignore[index]
    data = video.read_bytes()
    size = len(data)
    url = f"/api/jobs/{job['jobId']}/output"

    whole = await client.get(url)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == size

    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-70000": (100, 70000),
        "bytes=65530-131080": (65530, 131080),
        f"bytes={size - 10}-": (size - 10, size - 1),
        "bytes=-500": (size - 500, size - 1),
        "bytes=0-": (0, size - 1),
        f"bytes=5-{size * 3}": (5, size - 1),
        "bytes=7-7": (7, 7),
    }
    for header, (start, end) in cases.items():
        response = await client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert int(response.headers["content-length"]) == end - start + 1
        assert response.content == data[start : end + 1], header

    beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert_problem(beyond, 416, "E006-RANGE_NOT_SATISFIABLE")
    assert beyond.headers["content-range"] == f"bytes */{size}"
    ignored = await client.get(url, headers={"Range": "bytes=0-1,5-9"})  # multi-range: whole file
    assert ignored.status_code == 200
    assert ignored.content == data
    assert_problem(await client.get(f"/api/jobs/{job['jobId']}/thumbnail"), 404, "E005-ARTIFACT_NOT_FOUND")
