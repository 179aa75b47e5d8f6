"""The user's own media in a real video: uploaded through gRPC to a real server, referred to by a spec, and
found in the rendered MP4 by the built-in stages (issue 17's media acceptance, end to end).

The stage tests (tests/test_visuals_layout.py, tests/test_motion.py, tests/test_mix.py) hand each stage a
``MediaFile`` through the stage harness; this one goes through the upload's sniffing and re-encoding, the
store, the spec's reference check and the pipeline's resolver, as a user's job does.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import aio
from PIL import Image

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from tests.media import decoded_audio, dominant_frequency, frame_on_screen, job_settings, tone_bytes

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

WIDTH, HEIGHT = 320, 180
RATE = 48000
pytestmark = pytest.mark.timeout(300)


def halves_png() -> bytes:
    """A picture no theme draws: its left half pure red, its right half pure blue."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 0, 0))
    image.paste((0, 0, 255), (WIDTH // 2, 0, WIDTH, HEIGHT))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def upload(stub: JobServiceAsyncStub, data: bytes, name: str) -> job_service_pb2.Media:
    async def messages() -> AsyncIterator[job_service_pb2.UploadMediaRequest]:
        yield job_service_pb2.UploadMediaRequest(metadata=job_service_pb2.UploadMediaMetadata(file_name=name))
        yield job_service_pb2.UploadMediaRequest(chunk=data)

    return (await stub.UploadMedia(messages())).media


async def render_with_media(tmp_path: Path) -> tuple[job_pb2.Job, Path]:
    server = ReelcastServer(job_settings(tmp_path / "data"), host=PluginHost.load())
    await server.start()
    try:
        async with aio.insecure_channel(server.target) as channel:
            stub: JobServiceAsyncStub = job_service_pb2_grpc.JobServiceStub(channel)
            picture = await upload(stub, halves_png(), "halves.png")
            track = await upload(stub, tone_bytes(tmp_path), "tone.wav")
            spec = job_pb2.JobSpec(
                brief=job_pb2.Brief(topic="Lighthouses"),
                plan=job_pb2.Plan(motion=job_pb2.MOTION_NONE, transition=job_pb2.TRANSITION_NONE),
                script=[
                    job_pb2.Scene(title="Light", narration="A lighthouse lens bends the lamp's light."),
                    job_pb2.Scene(
                        title="Keepers",
                        narration="Keepers kept the lamp lit all night.",
                        background_media_id=picture.id,
                    ),
                ],
                music=job_pb2.MusicSpec(media_id=track.id),
                render=job_pb2.RenderSpec(width=WIDTH, height=HEIGHT, fps=10),
            )
            created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
            watch = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=created.job.id))
            async for _ in watch:
                pass
            final = (await stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.job.id))).job
            return final, server.settings.work_dir(final.id)
    finally:
        await server.stop(grace=0.5)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[job_pb2.Job, Path]:
    return asyncio.run(render_with_media(tmp_path_factory.mktemp("media-video")))


def _mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    pixels = list(image.crop(box).getdata())
    return tuple(sum(channel) / len(pixels) for channel in zip(*pixels, strict=True))


def test_an_uploaded_picture_is_its_scenes_background(rendered: tuple[job_pb2.Job, Path]) -> None:
    job, work_dir = rendered
    assert job.status == job_pb2.JOB_STATUS_SUCCEEDED, job.errors
    video = Path(job.output.video_path)
    narration = json.loads((work_dir / "voice.json").read_text(encoding="utf-8"))
    first, second = narration["scenes"]
    middle = float(second["start"]) + float(second["duration"]) / 2
    frame = frame_on_screen(video, middle, WIDTH, HEIGHT)
    # Corners, clear of the title and the pictogram: red on the left, blue on the right, under the scrim.
    left = _mean(frame, (4, HEIGHT - 40, 40, HEIGHT - 4))
    right = _mean(frame, (WIDTH - 40, HEIGHT - 40, WIDTH - 4, HEIGHT - 4))
    assert left[0] > 2 * max(left[1], left[2]) and left[0] > 50, left
    assert right[2] > 2 * max(right[0], right[1]) and right[2] > 50, right
    # The first scene keeps its theme's card: the picture is only where the spec put it.
    card = frame_on_screen(video, float(first["duration"]) / 2, WIDTH, HEIGHT)
    card_left = _mean(card, (4, HEIGHT - 40, 40, HEIGHT - 4))
    assert not card_left[0] > 2 * max(card_left[1], card_left[2]), card_left


def test_an_uploaded_track_is_the_music(rendered: tuple[job_pb2.Job, Path]) -> None:
    job, work_dir = rendered
    narration = json.loads((work_dir / "voice.json").read_text(encoding="utf-8"))
    first, second = narration["scenes"]
    # The pause between the two scenes: after the first scene's last word, before the second's first.
    pause = (first["words"][-1]["end"] + 0.05, second["words"][0]["start"] - 0.05)
    assert pause[1] - pause[0] >= 0.2, pause
    samples = decoded_audio(Path(job.output.video_path), RATE)
    assert abs(dominant_frequency(samples, RATE, pause) - 440) <= 5
