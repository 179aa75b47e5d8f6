"""The user's own media, against a real server (authentication on) and a real bridge, on both backends:
uploads are untrusted input (sniffed, capped, re-encoded), refusals are catalogue errors that leave nothing
behind, media belongs to its uploader like a job, and a job's stages get the stored bytes through
``ctx.media`` (on NATS through the JetStream object store)."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio
from nats.js.errors import NotFoundError
from PIL import Image

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.server.config import Settings
from reelcast.server.storage.retention import collect_garbage, collect_media_garbage, remove_stale_uploads
from tests.media import (
    ffmpeg_bytes,
    jpeg_with_orientation_bytes,
    mp4_clip_bytes,
    png_bomb_bytes,
    png_bytes,
    tone_bytes,
)
from tests.nats.natsproc import NatsServer
from tests.security.conftest import HANG_TIMEOUT, Secured, SecuredFactory, bearer, rpc_code

CHUNK = 64 * 1024


class MediaEchoPlugin:
    """Two stages: ``wait`` holds a job whose topic is "blocker" until ``gate`` is set (so that the next job
    stays queued behind it); ``render`` publishes the bytes ``ctx.media`` gives for the logo as the video."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="wait", title="Waiting", weight=1.0, order=0, run=self._wait))
        register(Stage(name="render", title="Rendering", weight=1.0, order=1, run=self._echo))

    def _wait(self, ctx: StageContext) -> None:
        if ctx.spec.brief.topic == "blocker":
            assert self.gate.wait(HANG_TIMEOUT)
        ctx.report(1.0, "waited")

    def _echo(self, ctx: StageContext) -> dict[str, Any]:
        target = ctx.path("video.mp4")
        if ctx.spec.logo.media_id:
            media = ctx.media(ctx.spec.logo.media_id)
            assert media.kind == "image" and media.width > 0
            target.write_bytes(media.path.read_bytes())
        else:
            target.write_bytes(b"no media")
        ctx.report(1.0, "echoed")
        return {"output": {"video_path": str(target), "size_bytes": target.stat().st_size}}


@pytest.fixture(params=["embedded", "nats"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings overrides of each backend: the embedded store, or a real nats-server."""
    if request.param == "embedded":
        yield {}
        return
    node = NatsServer(tmp_path / "nats")
    node.start()
    try:
        yield {"store_url": node.url}
    finally:
        node.stop()


@pytest.fixture
def echo() -> MediaEchoPlugin:
    return MediaEchoPlugin()


@pytest.fixture
async def deployment(
    start_secured: SecuredFactory, backend: dict[str, Any], echo: MediaEchoPlugin
) -> AsyncIterator[Secured]:
    secured = await start_secured(plugin=echo, media_quota_count=3, **backend)
    try:
        yield secured
    finally:
        echo.gate.set()


async def grpc_upload(secured: Secured, user: str, data: bytes, name: str) -> job_service_pb2.Media:
    async def messages() -> AsyncIterator[job_service_pb2.UploadMediaRequest]:
        yield job_service_pb2.UploadMediaRequest(metadata=job_service_pb2.UploadMediaMetadata(file_name=name))
        for start in range(0, len(data), CHUNK):
            yield job_service_pb2.UploadMediaRequest(chunk=data[start : start + CHUNK])

    reply = await secured.stub.UploadMedia(messages(), metadata=bearer(secured.keys[user]))
    return reply.media


async def rest_upload(secured: Secured, user: str, data: bytes, name: str, mime: str) -> httpx.Response:
    return await secured.http(user).post("/api/media", files={"file": (name, data, mime)})


async def stored_files(secured: Secured) -> list[str]:
    """The media files the backend holds (the data dir's media/, or media/ objects on NATS), and anything
    left among the uploads in progress."""
    server = secured.server
    leftovers = sorted(p.name for p in server.settings.media_incoming_dir.glob("*"))
    if server.backend.name == "nats":
        store = server.backend.connection.layout.files  # type: ignore[attr-defined]
        try:
            objects = [info.name for info in await store.list() if not info.deleted]
        except NotFoundError:  # nats-py's answer for an empty store
            objects = []
        return leftovers + sorted(name for name in objects if name.startswith("media/"))
    return leftovers + sorted(p.name for p in server.settings.media_dir.glob("*"))


async def files_once_settled(secured: Secured) -> list[str]:
    """``stored_files`` once no upload is in progress. When the bridge itself refuses an upload (over its
    size cap, a cut-off body), it answers and cancels its UploadMedia call at once; the server's handler then
    cleans up on its cancellation, a moment later. Waited for up to the hang timeout, never a fixed time."""
    incoming = secured.server.settings.media_incoming_dir
    for _ in range(int(HANG_TIMEOUT / 0.02)):
        if not any(incoming.glob("*")):
            break
        await asyncio.sleep(0.02)
    return await stored_files(secured)


async def listed_ids(secured: Secured, user: str) -> list[str]:
    reply = await secured.stub.ListMedia(
        job_service_pb2.ListMediaRequest(), metadata=bearer(secured.keys[user])
    )
    return [media.id for media in reply.media]


def pixels(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


async def test_uploads_of_every_kind_are_sniffed_reencoded_and_listed(
    deployment: Secured, tmp_path: Path
) -> None:
    secured = deployment
    source_png = png_bytes()
    # The names lie on purpose where they may: the type comes from the bytes.
    png = await rest_upload(secured, "alice", source_png, "picture.bin", "application/octet-stream")
    assert png.status_code == 201, png.text
    body = png.json()
    assert (body["kind"], body["contentType"], body["width"], body["height"]) == (
        "image",
        "image/png",
        64,
        48,
    )
    assert body["owner"] == "alice" and body["fileName"] == "picture.bin"
    assert png.headers["location"] == f"/api/media/{body['mediaId']}"
    got = await secured.http("alice").get(f"/api/media/{body['mediaId']}")
    assert got.status_code == 200 and got.json() == body

    jpeg = await grpc_upload(secured, "alice", jpeg_with_orientation_bytes(), "photo.jpg")
    # Stored landscape 80x40 with Orientation 6: upright, it is 40 wide and 80 high.
    assert (jpeg.kind, jpeg.content_type, jpeg.width, jpeg.height) == (
        job_service_pb2.MEDIA_KIND_IMAGE,
        "image/jpeg",
        40,
        80,
    )
    clip = await rest_upload(secured, "alice", mp4_clip_bytes(tmp_path), "clip.mp4", "video/mp4")
    assert clip.status_code == 201, clip.text
    clip_body = clip.json()
    assert (clip_body["kind"], clip_body["contentType"], clip_body["width"], clip_body["height"]) == (
        "clip",
        "video/mp4",
        160,
        90,
    )
    assert 0.9 <= clip_body["durationSeconds"] <= 1.1
    listed = await secured.http("alice").get("/api/media")
    assert listed.status_code == 200
    assert [m["mediaId"] for m in listed.json()["media"]] == [clip_body["mediaId"], jpeg.id, body["mediaId"]]

    if secured.server.backend.name != "nats":
        stored_jpeg = (secured.server.settings.media_dir / jpeg.id).read_bytes()
        upright = Image.open(io.BytesIO(stored_jpeg))
        assert upright.size == (40, 80)
        assert not upright.getexif() and b"SecretCam" not in stored_jpeg
        # Left half blue turned clockwise: the top is blue, the bottom red.
        rgb = upright.convert("RGB")
        top, bottom = rgb.getpixel((20, 10)), rgb.getpixel((20, 70))
        assert isinstance(top, tuple) and isinstance(bottom, tuple)
        assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2]


async def test_audio_tracks_wav_and_mp3_are_stored_as_wav(deployment: Secured, tmp_path: Path) -> None:
    for name in ("tone.wav", "tone.mp3"):
        track = await grpc_upload(deployment, "bob", tone_bytes(tmp_path, name), name)
        assert (track.kind, track.content_type) == (job_service_pb2.MEDIA_KIND_AUDIO, "audio/wav")
        assert 0.9 <= track.duration_seconds <= 1.2
        assert track.size_bytes > 48_000 * 2 * 2 * 0.9  # 48 kHz stereo 16-bit PCM


REFUSALS: dict[str, tuple[Callable[[Path], bytes], str, int, str]] = {
    # name: (bytes maker, file name, status, code)
    "png bomb 20000x20000": (lambda tmp: png_bomb_bytes(), "bomb.png", 422, "E043-MEDIA_TOO_MANY_PIXELS"),
    "mp4 named .png": (lambda tmp: mp4_clip_bytes(tmp), "picture.png", 201, ""),
    "text named .mp4": (
        lambda tmp: b"just some text, not a video\n" * 20,
        "clip.mp4",
        415,
        "E042-MEDIA_TYPE_UNSUPPORTED",
    ),
    "clip at 240 fps": (
        lambda tmp: ffmpeg_bytes(
            tmp, "fast.mp4", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=240:duration=0.5"
        ),
        "fast.mp4",
        422,
        "E046-MEDIA_STREAMS_UNSUPPORTED",
    ),
    "truncated mp4": (lambda tmp: mp4_clip_bytes(tmp)[:12_000], "clip.mp4", 422, "E045-MEDIA_UNREADABLE"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_untrusted_uploads_are_judged_by_their_content_and_refusals_leave_nothing(
    deployment: Secured, tmp_path: Path, case: str
) -> None:
    make, name, status, code = REFUSALS[case]
    data = make(tmp_path)
    before = await stored_files(deployment)
    response = await rest_upload(deployment, "alice", data, name, "image/png")
    assert response.status_code == status, response.text
    if status == 201:
        # An MP4 whose name says PNG is a clip: the name never decides.
        assert response.json()["kind"] == "clip"
        return
    problem = response.json()
    assert problem["errorCode"] == code and problem["remediation"] and problem["correlationId"]
    assert await stored_files(deployment) == before == []
    assert await listed_ids(deployment, "alice") == []
    # The same bytes over gRPC: the same code.
    with pytest.raises(aio.AioRpcError) as refused:
        await grpc_upload(deployment, "alice", data, name)
    assert rpc_code(refused.value)[1] == code
    assert await stored_files(deployment) == []


async def test_an_upload_over_the_quota_is_refused_and_the_quota_is_unchanged(deployment: Secured) -> None:
    # The deployment allows 3 files per user.
    kept = [await grpc_upload(deployment, "alice", png_bytes(), f"p{n}.png") for n in range(3)]
    files = await stored_files(deployment)
    assert len(files) == 3
    response = await rest_upload(deployment, "alice", png_bytes(), "one-more.png", "image/png")
    assert response.status_code == 413, response.text
    assert response.json()["errorCode"] == "E047-MEDIA_QUOTA_EXCEEDED"
    assert await stored_files(deployment) == files
    assert sorted(await listed_ids(deployment, "alice")) == sorted(m.id for m in kept)
    # Another user's quota is their own; and a deletion frees a slot.
    assert (await rest_upload(deployment, "bob", png_bytes(), "b.png", "image/png")).status_code == 201
    deleted = await deployment.http("alice").delete(f"/api/media/{kept[0].id}")
    assert deleted.status_code == 204
    assert (await rest_upload(deployment, "alice", png_bytes(), "again.png", "image/png")).status_code == 201


async def test_an_upload_over_the_size_cap_is_refused_while_it_streams(
    start_secured: SecuredFactory, echo: MediaEchoPlugin
) -> None:
    secured = await start_secured(plugin=echo, media_max_bytes=100_000, bridge={"max_upload_bytes": 100_000})
    # Refused for its size before anything looks at its content.
    big = png_bytes() + os.urandom(150_000)
    response = await rest_upload(secured, "alice", big, "big.png", "image/png")
    assert response.status_code == 413 and response.json()["errorCode"] == "E041-MEDIA_TOO_LARGE"
    assert await files_once_settled(secured) == []
    with pytest.raises(aio.AioRpcError) as refused:
        await grpc_upload(secured, "alice", big, "big.png")
    assert rpc_code(refused.value)[1] == "E041-MEDIA_TOO_LARGE"
    assert await stored_files(secured) == []


def _without_correlation(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "correlationId"}


async def test_another_users_media_is_exactly_as_missing_as_an_unknown_id(deployment: Secured) -> None:
    alices = await grpc_upload(deployment, "alice", png_bytes(), "mine.png")
    missing = "0" * 32
    bob = deployment.http("bob")
    for method in ("GET", "DELETE"):
        foreign = await bob.request(method, f"/api/media/{alices.id}")
        unknown = await bob.request(method, f"/api/media/{missing}")
        assert foreign.status_code == unknown.status_code == 404
        assert _without_correlation(foreign.json()) == _without_correlation(unknown.json())
        assert foreign.json()["errorCode"] == "E048-MEDIA_NOT_FOUND" and alices.id not in foreign.text
    as_bob = bearer(deployment.keys["bob"])
    with pytest.raises(aio.AioRpcError) as refused:
        await deployment.stub.GetMedia(job_service_pb2.GetMediaRequest(media_id=alices.id), metadata=as_bob)
    assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E048-MEDIA_NOT_FOUND")
    with pytest.raises(aio.AioRpcError) as refused:
        await deployment.stub.DeleteMedia(
            job_service_pb2.DeleteMediaRequest(media_id=alices.id), metadata=as_bob
        )
    assert rpc_code(refused.value) == (grpc.StatusCode.NOT_FOUND, "E048-MEDIA_NOT_FOUND")
    assert (await bob.get("/api/media")).json()["media"] == []
    # In a spec: bob's job may not use alice's logo, and is told what he would be for a made-up id.
    answers = []
    for media_id in (alices.id, missing):
        with pytest.raises(aio.AioRpcError) as refused:
            await deployment.stub.CreateJob(
                job_service_pb2.CreateJobRequest(
                    spec=job_pb2.JobSpec(
                        brief=job_pb2.Brief(topic="t"), logo=job_pb2.LogoSpec(media_id=media_id)
                    )
                ),
                metadata=bearer(deployment.keys["bob"]),
            )
        assert rpc_code(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "E049-MEDIA_REFERENCE_UNKNOWN")
        answers.append(str(refused.value.details()).replace(media_id, "ID"))
    assert answers[0] == answers[1]
    rest_answers = []
    for media_id in (alices.id, missing):
        created = await bob.post("/api/jobs", json={"brief": {"topic": "t"}, "logo": {"mediaId": media_id}})
        assert created.status_code == 400, created.text
        problem = created.json()
        assert problem["errorCode"] == "E049-MEDIA_REFERENCE_UNKNOWN"
        assert [v["field"] for v in problem["violations"]] == ["logo.mediaId"]
        rest_answers.append(_without_correlation(problem))
    assert rest_answers[0] == rest_answers[1]
    # alice still has it; an admin sees and may delete it.
    assert await listed_ids(deployment, "alice") == [alices.id]
    assert alices.id in await listed_ids(deployment, "root")
    assert (await deployment.http("root").get(f"/api/media/{alices.id}")).status_code == 200


async def test_a_spec_must_use_each_kind_where_it_fits(deployment: Secured, tmp_path: Path) -> None:
    track = await grpc_upload(deployment, "alice", tone_bytes(tmp_path), "tone.wav")
    picture = await grpc_upload(deployment, "alice", png_bytes(), "p.png")
    wrong = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="t"),
        logo=job_pb2.LogoSpec(media_id=track.id),
        music=job_pb2.MusicSpec(media_id=picture.id),
    )
    with pytest.raises(aio.AioRpcError) as refused:
        await deployment.stub.CreateJob(
            job_service_pb2.CreateJobRequest(spec=wrong), metadata=bearer(deployment.keys["alice"])
        )
    assert rpc_code(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "E050-MEDIA_KIND_MISMATCH")
    details = str(refused.value.details())
    assert "logo.media_id" in details and "music.media_id" in details
    # Over REST: a track as a scene's background; a picture as the logo of a job that then is created.
    alice = deployment.http("alice")
    scenes = [{"narration": "One.", "backgroundMediaId": track.id}]
    refused_rest = await alice.post("/api/jobs", json={"brief": {"topic": "t"}, "script": scenes})
    assert refused_rest.status_code == 400 and refused_rest.json()["errorCode"] == "E050-MEDIA_KIND_MISMATCH"
    assert [v["field"] for v in refused_rest.json()["violations"]] == ["script[0].backgroundMediaId"]
    body = {
        "brief": {"topic": "t"},
        "script": [{"narration": "One.", "backgroundMediaId": picture.id}],
        "logo": {"mediaId": picture.id, "corner": "bottom-left"},
        "music": {"mediaId": track.id},
    }
    created = await alice.post("/api/jobs", json=body)
    assert created.status_code == 201, created.text
    stored = await deployment.stub.GetJob(
        job_service_pb2.GetJobRequest(job_id=created.json()["jobId"]),
        metadata=bearer(deployment.keys["alice"]),
    )
    spec = stored.job.spec
    assert (
        spec.logo.media_id,
        spec.logo.corner,
        spec.music.media_id,
        spec.script[0].background_media_id,
    ) == (
        picture.id,
        job_pb2.CORNER_BOTTOM_LEFT,
        track.id,
        picture.id,
    )


async def test_a_job_gets_the_stored_bytes_of_its_media_through_ctx_media(deployment: Secured) -> None:
    source = png_bytes()
    picture = await grpc_upload(deployment, "alice", source, "logo.png")
    job = await deployment.stub.CreateJob(
        job_service_pb2.CreateJobRequest(
            spec=job_pb2.JobSpec(
                brief=job_pb2.Brief(topic="Otters"), logo=job_pb2.LogoSpec(media_id=picture.id)
            )
        ),
        metadata=bearer(deployment.keys["alice"]),
    )
    events = await deployment.finish("alice", job.job.id)
    assert events[-1].job_status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1]
    output = await deployment.http("alice").get(f"/api/jobs/{job.job.id}/output")
    assert output.status_code == 200
    assert len(output.content) == picture.size_bytes
    assert pixels(output.content).tobytes() == pixels(source).tobytes()


async def test_a_queued_job_whose_media_is_deleted_fails_with_e451(
    start_secured: SecuredFactory, backend: dict[str, Any], echo: MediaEchoPlugin
) -> None:
    secured = await start_secured(plugin=echo, max_concurrent_jobs=1, **backend)
    try:
        picture = await grpc_upload(secured, "alice", png_bytes(), "logo.png")
        blocker = await secured.create_job("alice", "blocker")
        job = await secured.stub.CreateJob(
            job_service_pb2.CreateJobRequest(
                spec=job_pb2.JobSpec(
                    brief=job_pb2.Brief(topic="t"), logo=job_pb2.LogoSpec(media_id=picture.id)
                )
            ),
            metadata=bearer(secured.keys["alice"]),
        )
        assert job.job.status == job_pb2.JOB_STATUS_QUEUED
        deleted = await secured.http("alice").delete(f"/api/media/{picture.id}")
        assert deleted.status_code == 204
        echo.gate.set()
        await secured.finish("alice", blocker.id)
        events = await asyncio.wait_for(secured.finish("alice", job.job.id), HANG_TIMEOUT)
    finally:
        echo.gate.set()
    final = events[-1]
    assert final.job_status == job_pb2.JOB_STATUS_FAILED
    assert [error.code for error in final.errors] == ["E451-MEDIA_NOT_AVAILABLE"], final
    assert await stored_files(secured) == []


async def test_retention_deletes_old_media_once_no_kept_job_refers_to_it(deployment: Secured) -> None:
    server = deployment.server
    used = await grpc_upload(deployment, "alice", png_bytes(), "used.png")
    unused = await grpc_upload(deployment, "alice", png_bytes(), "unused.png")
    job = await deployment.stub.CreateJob(
        job_service_pb2.CreateJobRequest(
            spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters"), logo=job_pb2.LogoSpec(media_id=used.id))
        ),
        metadata=bearer(deployment.keys["alice"]),
    )
    await deployment.finish("alice", job.job.id)
    later = time.time() + 8 * 24 * 3600  # past the 7-day retention

    assert await collect_media_garbage(server.settings, server.store, server.backend.media) == []
    assert await collect_media_garbage(server.settings, server.store, server.backend.media, now=later) == [
        unused.id
    ]
    assert await listed_ids(deployment, "alice") == [used.id]
    # The job goes with its retention, and then its media.
    assert await collect_garbage(server.settings, server.store, now=later) == [job.job.id]
    assert await collect_media_garbage(server.settings, server.store, server.backend.media, now=later) == [
        used.id
    ]
    assert await listed_ids(deployment, "alice") == []
    assert await stored_files(deployment) == []


async def test_list_media_pages_newest_first_with_an_opaque_token(deployment: Secured) -> None:
    uploaded = [await grpc_upload(deployment, "bob", png_bytes(), f"p{n}.png") for n in range(3)]
    alice_own = await grpc_upload(deployment, "alice", png_bytes(), "a.png")
    bob = deployment.http("bob")
    first = (await bob.get("/api/media", params={"pageSize": "2"})).json()
    assert [m["mediaId"] for m in first["media"]] == [uploaded[2].id, uploaded[1].id]
    assert first["nextPageToken"]
    second = (
        await bob.get("/api/media", params={"pageSize": "2", "pageToken": first["nextPageToken"]})
    ).json()
    assert [m["mediaId"] for m in second["media"]] == [uploaded[0].id] and second["nextPageToken"] == ""
    # alice's token is not bob's.
    foreign = await deployment.http("alice").get("/api/media", params={"pageToken": first["nextPageToken"]})
    assert foreign.status_code == 400 and foreign.json()["errorCode"] == "E002-INVALID_REQUEST"
    assert alice_own.id not in {m["mediaId"] for m in first["media"] + second["media"]}


def test_files_left_by_an_upload_whose_process_died_are_swept_after_a_day(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth_required=False)
    settings.media_incoming_dir.mkdir(parents=True)
    left = settings.media_incoming_dir / "0123abcd"
    left.write_bytes(b"half an upload")
    assert remove_stale_uploads(settings) == 0 and left.exists()
    assert remove_stale_uploads(settings, now=time.time() + 25 * 3600) == 1 and not left.exists()


async def test_a_malformed_upload_request_is_a_catalogue_error(deployment: Secured) -> None:
    alice = deployment.http("alice")
    as_json = await alice.post("/api/media", json={"file": "x"})
    assert as_json.status_code == 415 and as_json.json()["errorCode"] == "E012-UNSUPPORTED_MEDIA_TYPE"
    no_file = await alice.post("/api/media", files={"picture": ("p.png", png_bytes(), "image/png")})
    assert no_file.status_code == 400 and no_file.json()["errorCode"] == "E040-MEDIA_UPLOAD_INVALID"
    cut = await alice.post(
        "/api/media",
        content=b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
        + png_bytes()[:50],
        headers={"Content-Type": "multipart/form-data; boundary=XYZ"},
    )
    assert cut.status_code == 400 and cut.json()["errorCode"] == "E040-MEDIA_UPLOAD_INVALID"
    with pytest.raises(aio.AioRpcError) as refused:
        await deployment.stub.UploadMedia(
            iter([job_service_pb2.UploadMediaRequest(chunk=png_bytes())]),
            metadata=bearer(deployment.keys["alice"]),
        )
    assert rpc_code(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "E040-MEDIA_UPLOAD_INVALID")
    assert await files_once_settled(deployment) == [] and await listed_ids(deployment, "alice") == []
