"""Measuring rendered media with the real ffmpeg (there is no ffprobe), and running built-in jobs.

These helpers measure; they never produce what they measure. ``run_job`` drives a real ReelcastServer with
the built-in stages over gRPC, in its own event loop, so module-scoped fixtures can share one render.
"""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio_ffmpeg
import numpy as np
from grpc import aio
from PIL import Image, ImageChops, ImageDraw

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class Probe:
    duration: float
    width: int
    height: int
    fps: float
    video_codec: str
    pixel_format: str
    audio_codec: str
    subtitle_codecs: list[str]


def probe(path: Path) -> Probe:
    """Stream facts from ffmpeg's input dump."""
    result = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    text = result.stderr
    duration_match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    video = re.search(r"Video: (\w+).*?, (\w+)\(?.*?, (\d+)x(\d+).*?, ([\d.]+) fps", text)
    audio = re.search(r"Audio: (\w+)", text)
    assert duration_match and video, text
    hours, minutes, seconds = duration_match.groups()
    return Probe(
        duration=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        width=int(video.group(3)),
        height=int(video.group(4)),
        fps=float(video.group(5)),
        video_codec=video.group(1),
        pixel_format=video.group(2),
        audio_codec=audio.group(1) if audio else "",
        subtitle_codecs=re.findall(r"Subtitle: (\w+)", text),
    )


def decode_exit_code(path: Path) -> int:
    """Decodes every stream to the null muxer; 0 means the file is playable end to end."""
    return subprocess.run(
        [FFMPEG, "-v", "error", "-xerror", "-i", str(path), "-map", "0:v", "-map", "0:a", "-f", "null", "-"],
        capture_output=True,
    ).returncode


def decoded_video_seconds(path: Path) -> float:
    """The time of the last decoded video frame plus one frame, from the decoder's own stats."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def audio_rms(path: Path) -> float:
    """RMS of the decoded audio (mono at 16 kHz) as a fraction of full scale."""
    samples = decoded_audio(path, 16000)
    if not samples.size:
        return 0.0
    return float(np.sqrt(np.mean(samples**2)))


def frame_at(path: Path, seconds: float, size: tuple[int, int] = (160, 90)) -> bytes:
    """The frame at ``seconds``, scaled down, as raw RGB bytes."""
    return subprocess.run(
        [
            FFMPEG, "-v", "error", "-ss", f"{seconds:.3f}", "-i", str(path), "-frames:v", "1",
            "-vf", f"scale={size[0]}:{size[1]}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


def mean_abs_difference(first: bytes, second: bytes) -> float:
    assert len(first) == len(second) and first
    return sum(abs(a - b) for a, b in zip(first, second, strict=True)) / len(first)


def band(frame: bytes, size: tuple[int, int], top: float, bottom: float) -> bytes:
    """The rows of a raw RGB frame between fractions ``top`` and ``bottom`` of its height."""
    width, height = size
    return frame[int(height * top) * width * 3 : int(height * bottom) * width * 3]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


@dataclass
class JobRun:
    settings: Settings
    job: job_pb2.Job
    events: list[job_pb2.JobProgress] = field(default_factory=list)

    @property
    def work_dir(self) -> Path:
        return self.settings.work_dir(self.job.id)

    def scene_wavs(self) -> list[Path]:
        return sorted((self.work_dir / "voice").glob("scene-*.wav"))


EventHook = Callable[[job_pb2.JobProgress, "JobServiceAsyncStub", str], Awaitable[None]]


async def run_job_async(
    settings: Settings, spec: job_pb2.JobSpec, on_event: EventHook | None = None
) -> JobRun:
    """Runs ``spec`` on a real server with the built-in stages and watches it to its terminal event."""
    server = ReelcastServer(settings, host=PluginHost.load())
    await server.start()
    try:
        async with aio.insecure_channel(server.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec))
            events: list[job_pb2.JobProgress] = []
            watch = job_service_pb2.WatchJobRequest(job_id=created.job.id)
            async for event in stub.WatchJob(watch):
                events.append(event)
                if on_event is not None:
                    await on_event(event, stub, created.job.id)
            final = await stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.job.id))
            return JobRun(settings, final.job, events)
    finally:
        await server.stop(grace=0.5)


def run_job(settings: Settings, spec: job_pb2.JobSpec, on_event: EventHook | None = None) -> JobRun:
    return asyncio.run(run_job_async(settings, spec, on_event))


def video_frame_times(path: Path) -> list[tuple[float, float]]:
    """(start, duration) in seconds of every decoded video frame, from the ``showinfo`` filter. The last
    frame's start plus its duration is where the video stream ends."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v", "-vf", "showinfo", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    found = re.findall(r"pts_time:\s*([\d.]+)\s+duration:\s*\d+\s+duration_time:\s*([\d.]+)", result.stderr)
    return [(float(start), float(duration)) for start, duration in found]


@dataclass(frozen=True)
class Loudness:
    """``ebur128``'s summary of a file's audio: integrated loudness (LUFS) and true peak (dBTP)."""

    integrated: float
    true_peak: float


def loudness(path: Path) -> Loudness:
    """The integrated loudness and true peak of ``path``'s audio, measured by ffmpeg's ebur128 filter."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a", "-af", "ebur128=peak=true",
         "-f", "null", "-"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    summary = result.stderr[result.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated and peak, summary
    return Loudness(float(integrated.group(1)), float(peak.group(1)))


def decoded_audio(path: Path, rate: int = 48000) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``path``'s audio decoded to mono floats (channels averaged) at ``rate``, full scale 1.0."""
    raw = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


Window = tuple[float, float]


def power_in(samples: np.ndarray[Any, Any], rate: int, windows: Sequence[Window]) -> float:
    """The mean square of ``samples`` over the union of the (start, end) ``windows``, in seconds."""
    picked = [samples[int(start * rate) : int(end * rate)] for start, end in windows]
    joined = np.concatenate(picked)
    assert joined.size, windows
    return float(np.mean(joined**2))


def dbfs(power: float) -> float:
    """A mean square as a level in dB relative to a full-scale square wave (RMS 1.0)."""
    return 10 * math.log10(max(power, 1e-20))


def dominant_frequency(samples: np.ndarray[Any, Any], rate: int, window: Window) -> float:
    """The frequency (Hz) of the strongest bin of the spectrum of ``samples`` inside ``window``."""
    piece = samples[int(window[0] * rate) : int(window[1] * rate)]
    spectrum = np.abs(np.fft.rfft(piece * np.hanning(piece.size)))
    return float(np.fft.rfftfreq(piece.size, 1 / rate)[int(np.argmax(spectrum))])


# -- short built-in jobs, and the frame on screen ----------------------------------------------------------


def job_settings(data_dir: Path, **overrides: Any) -> Settings:
    """The settings of a short built-in job in a test: loopback on a free port, every progress tick written,
    the fastest x264 preset; ``overrides`` set other fields."""
    fields: dict[str, Any] = {
        "grpc_listen": "127.0.0.1:0",
        "progress_min_interval_seconds": 0.0,
        "x264_preset": "ultrafast",
        **overrides,
    }
    return Settings(data_dir=data_dir, **fields)


def lighthouse_spec(render: job_pb2.RenderSpec) -> job_pb2.JobSpec:
    """Two short scenes about lighthouses (about 6 s of speech with Piper), rendered with ``render``."""
    return job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Lighthouses"),
        script=[
            job_pb2.Scene(title="Light", narration="A lighthouse lens bends the lamp's light into one beam."),
            job_pb2.Scene(
                title="Keepers", narration="Keepers lived beside the lamp and kept it lit all night."
            ),
        ],
        render=render,
    )


def frame_on_screen(path: Path, seconds: float, width: int, height: int) -> Image.Image:
    """The frame on screen at ``seconds``, full size. Not ``-ss`` (frame_at): at a variable frame rate a
    seek drops the frame that began before the moment (the one on screen); the fps filter repeats it."""
    raw = subprocess.run(
        [
            FFMPEG, "-v", "error", "-i", str(path),
            "-vf", f"fps=30,trim=start={seconds:.3f}", "-frames:v", "1",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    return Image.frombytes("RGB", (width, height), raw)


def difference_mask(frame: Image.Image, reference: Image.Image, threshold: int) -> Image.Image:
    """White where ``frame`` differs from ``reference`` by more than ``threshold`` (0-255) in any channel:
    what was drawn over the same picture, such as a caption."""
    channels = ImageChops.difference(frame, reference).convert("RGB").split()
    lightest = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    return lightest.point(lambda value: 255 if value > threshold else 0)


# -- scene images --------------------------------------------------------------------------------------------


def ink_mask(image: Image.Image, reference: Image.Image, threshold: int = 24) -> Image.Image:
    """A 1-bit mask of the pixels where ``image`` differs from ``reference`` (what was drawn over it)."""
    difference = ImageChops.difference(image.convert("RGB"), reference.convert("RGB")).convert("L")
    return difference.point(lambda value: 255 if value > threshold else 0).convert("1")


def ink_outside(mask: Image.Image, boxes: list[list[int]], grow: int = 2) -> int:
    """How many ink pixels of ``mask`` lie outside every ``[x, y, w, h]`` box (each grown by ``grow``)."""
    outside = mask.copy()
    draw = ImageDraw.Draw(outside)
    for x, y, width, height in boxes:
        draw.rectangle((x - grow, y - grow, x + width + grow, y + height + grow), fill=0)
    return outside.histogram()[255]


def ink_inside(mask: Image.Image, box: list[int]) -> int:
    x, y, width, height = box
    return mask.crop((x, y, x + width, y + height)).histogram()[255]


def region_difference(first: Image.Image, second: Image.Image, box: list[int]) -> float:
    """The mean absolute difference per channel of two images inside ``[x, y, w, h]``."""
    x, y, width, height = box
    crop = (x, y, x + width, y + height)
    return mean_abs_difference(
        first.convert("RGB").crop(crop).tobytes(), second.convert("RGB").crop(crop).tobytes()
    )


def frame_number(path: Path, number: int, size: tuple[int, int] = (160, 90)) -> bytes:
    """Decoded frame ``number`` (counting from 0), scaled down, as raw RGB bytes (exact, no seeking)."""
    return subprocess.run(
        [
            FFMPEG, "-v", "error", "-i", str(path),
            "-vf", f"select=eq(n\\,{number}),scale={size[0]}:{size[1]}", "-frames:v", "1",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


def frames_ssim(path: Path, first: int, second: int) -> float:
    """ffmpeg's SSIM (all planes, 1.0 = identical) between decoded frames ``first`` and ``second``."""
    graph = f"[0:v]select=eq(n\\,{first})[a];[1:v]select=eq(n\\,{second})[b];[a][b]ssim"
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-i", str(path), "-lavfi", graph, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    found = re.findall(r"All:([\d.]+)", result.stderr)
    assert found, result.stderr[-2000:]
    return float(found[-1])


def mix(first: bytes, second: bytes) -> bytes:
    """The 50/50 blend of two raw frames of the same size."""
    return bytes((a + b) // 2 for a, b in zip(first, second, strict=True))


def input_dump(path: Path) -> str:
    """ffmpeg's description of a media file (streams, tags, chapters): what ffprobe would print."""
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


# -- Uploads a test sends (made here, by Pillow and the real ffmpeg) ----------------------------------------


def png_bytes(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    """A PNG with a gradient, so that its pixels can be matched after the server re-encodes it."""
    from io import BytesIO

    from PIL import Image

    image = Image.new(mode, size)
    image.putdata([((x * 4) % 256, (y * 5) % 256, 90) for y in range(size[1]) for x in range(size[0])])
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def png_bomb_bytes(side: int = 20_000) -> bytes:
    """A ``side`` x ``side`` PNG of one colour: 1 bit a pixel compresses 400 million pixels into tens of KB;
    decoded, it would take 1.2 GB of RGB."""
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("1", (side, side), 1).save(out, "PNG", optimize=True)
    return out.getvalue()


def jpeg_with_orientation_bytes(size: tuple[int, int] = (80, 40), orientation: int = 6) -> bytes:
    """A JPEG stored landscape with an EXIF Orientation tag (6: rotate 90 degrees clockwise to view) and a
    camera-ish Make tag that must not survive."""
    from io import BytesIO

    from PIL import Image

    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, size[0] // 2, size[1]))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"
    out = BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()


def ffmpeg_bytes(tmp_path: Path, name: str, *args: str) -> bytes:
    """What ``ffmpeg ARGS tmp_path/name`` writes."""
    target = tmp_path / name
    subprocess.run([FFMPEG, "-v", "error", "-y", *args, str(target)], check=True)
    return target.read_bytes()


def mp4_clip_bytes(tmp_path: Path, seconds: float = 1.0, size: str = "160x90") -> bytes:
    """A short H.264 test pattern with a tone (the server drops the audio)."""
    return ffmpeg_bytes(
        tmp_path,
        "clip.mp4",
        *("-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
        *("-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-shortest"),
    )


def tone_bytes(tmp_path: Path, name: str = "tone.wav", seconds: float = 1.0) -> bytes:
    """A 440 Hz tone, in the container and codec ``name``'s extension picks (wav, mp3)."""
    return ffmpeg_bytes(tmp_path, name, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}")
