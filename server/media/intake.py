"""Turns an uploaded file, untrusted, into one a stage may use as it is (docs/api.md, Media).

- The type comes from the bytes: image signatures go to Pillow; anything else to ffmpeg's probe, restricted to
  a short list of demuxers (``-format_whitelist``), so that a playlist or a concat script can never make
  ffmpeg open another file or a URL.
- Caps are checked from the header before anything is decoded: a 20,000 x 20,000 PNG bomb of a few KB is
  refused from its IHDR, never inflated to 1.6 GB of pixels.
- What is stored is re-encoded: images as PNG (with alpha) or JPEG, EXIF orientation applied and every
  metadata chunk dropped; clips as H.264 yuv420p MP4 without audio, scaled into 1920x1080 at 30 fps at most;
  tracks as 48 kHz stereo WAV. A truncated or damaged file fails its decode and is refused.

Everything here is blocking (Pillow, ffmpeg subprocesses): the servicer runs it in a thread.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageOps

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_service_pb2

IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
# Containers of clips and tracks that ffmpeg may open; nothing that refers to other files (hls, concat...).
ALLOWED_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,wav,mp3,ogg,flac,aac"
# Stored clips fit in this box (never upscaled) at this frame rate at most.
CLIP_BOX = (1920, 1080)
CLIP_MAX_FPS = 30
# What a clip's source may be, whatever the picture caps: decoding every frame of 60 s of 8K at 240 fps would
# keep a core busy for many minutes before the first stored frame.
CLIP_MAX_SOURCE_PIXELS = 3840 * 2160
CLIP_MAX_SOURCE_FPS = 120.0
AUDIO_RATE = 48_000
# A probe or a transcode of an upload within the caps takes seconds; this bounds a pathological one.
FFMPEG_TIMEOUT_SECONDS = 300.0
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio|Subtitle|Data|Attachment): (.*)$", re.MULTILINE)
_SIZE = re.compile(r"\b(\d{1,6})x(\d{1,6})\b")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)\b")
# What ffmpeg says about a file it recognised but cannot read to the end.
_DAMAGED = ("moov atom not found", "partial file", "invalid data found", "error while decoding", "truncat")


@dataclass(frozen=True)
class MediaLimits:
    """The caps an upload is checked against (Settings.media_limits)."""

    max_bytes: int
    max_pixels: int
    max_side: int
    max_clip_seconds: float
    max_audio_seconds: float


@dataclass(frozen=True)
class PreparedMedia:
    """An upload after intake: the re-encoded file (``path``) and what it is."""

    kind: int
    path: Path
    content_type: str
    width: int = 0
    height: int = 0
    duration_seconds: float = 0.0


def prepare_upload(source: Path, limits: MediaLimits) -> PreparedMedia:
    """Sniffs, checks and re-encodes ``source`` into a file beside it; ReelcastError (E042-E046) otherwise.
    The caller removes ``source`` and, on a refusal, whatever this left (every output is ``source`` plus a
    suffix)."""
    with source.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return _prepare_image(source, limits)
    return _prepare_av(source, limits)


def _check_pixels(width: int, height: int, limits: MediaLimits, what: str) -> None:
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ReelcastError(
            errors.MEDIA_TOO_MANY_PIXELS,
            f"The {what} is {width}x{height}; the caps are {limits.max_side} pixels a side and "
            f"{limits.max_pixels} pixels in all.",
        )


def _prepare_image(source: Path, limits: MediaLimits) -> PreparedMedia:
    try:
        # open() reads the header only: the size is known before a single pixel is inflated.
        with Image.open(source) as image:
            _check_pixels(image.width, image.height, limits, "picture")
            image.load()
            upright = ImageOps.exif_transpose(image)
            has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            mode = "RGBA" if has_alpha else "RGB"
            converted = upright.convert(mode)
            # A new image from the pixels alone: no EXIF, ICC, XMP or text chunk survives.
            clean = Image.frombytes(mode, converted.size, converted.tobytes())
    except ReelcastError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own guard, at open, for a header far past any cap of ours.
        raise ReelcastError(
            errors.MEDIA_TOO_MANY_PIXELS, "The picture's header declares too many pixels."
        ) from None
    except Exception as damaged:  # untrusted bytes: whatever a decoder raises means "cannot be read"
        reason = type(damaged).__name__
        raise ReelcastError(errors.MEDIA_UNREADABLE, f"The picture cannot be decoded ({reason}).") from None
    is_jpeg = _starts_with(source, b"\xff\xd8\xff")
    if is_jpeg and not has_alpha:
        target, content_type = _output(source, ".jpg"), "image/jpeg"
        clean.save(target, "JPEG", quality=92)
    else:
        target, content_type = _output(source, ".png"), "image/png"
        clean.save(target, "PNG", optimize=False)
    return PreparedMedia(job_service_pb2.MEDIA_KIND_IMAGE, target, content_type, clean.width, clean.height)


def _output(source: Path, suffix: str) -> Path:
    return source.with_name(f"{source.name}.stored{suffix}")


def _starts_with(path: Path, prefix: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(prefix)) == prefix


@dataclass(frozen=True)
class _Probe:
    duration: float
    video: list[str]
    audio: list[str]
    others: int


def _ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    try:
        return subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=FFMPEG_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise ReelcastError(errors.MEDIA_UNREADABLE, "Reading the file took too long.") from None


def _input(source: Path) -> list[str]:
    return ["-format_whitelist", ALLOWED_FORMATS, "-protocol_whitelist", "file", "-i", str(source)]


def _probe(source: Path) -> _Probe:
    result = _ffmpeg(*_input(source))
    text = result.stderr
    if "Input #0" not in text:
        lowered = text.lower()
        if "moov atom not found" in lowered or "truncat" in lowered:
            raise ReelcastError(errors.MEDIA_UNREADABLE, "The file is truncated: its index is missing.")
        raise ReelcastError(
            errors.MEDIA_TYPE_UNSUPPORTED, "The content is not a picture, clip or track the server reads."
        )
    found = _DURATION.search(text)
    duration = 0.0
    if found:
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video, audio, others = [], [], 0
    for kind, description in _STREAM.findall(text):
        if kind == "Video" and "attached pic" not in description:
            video.append(description)
        elif kind == "Audio":
            audio.append(description)
        elif kind != "Video":
            others += 1
    return _Probe(duration, video, audio, others)


def _prepare_av(source: Path, limits: MediaLimits) -> PreparedMedia:
    probe = _probe(source)
    if len(probe.video) > 1 or len(probe.audio) > 1 or probe.others > 4:
        raise ReelcastError(
            errors.MEDIA_STREAMS_UNSUPPORTED,
            f"The file holds {len(probe.video)} video and {len(probe.audio)} audio streams; "
            "at most one each.",
        )
    if probe.video:
        return _prepare_clip(source, probe, limits)
    if probe.audio:
        return _prepare_audio(source, probe, limits)
    raise ReelcastError(errors.MEDIA_TYPE_UNSUPPORTED, "The file holds neither a video nor an audio stream.")


def _check_duration(duration: float, limit: float, what: str) -> None:
    if duration <= 0:
        raise ReelcastError(errors.MEDIA_UNREADABLE, f"The {what}'s length cannot be read.")
    if duration > limit:
        raise ReelcastError(
            errors.MEDIA_TOO_LONG, f"The {what} lasts {duration:.1f} s; the limit is {limit:g} s."
        )


def _transcode(source: Path, target: Path, output_args: list[str]) -> None:
    """Runs one transcode; any error ffmpeg reports on the way (a cut-off file, a damaged frame) refuses
    the upload, so a file that only half decodes is never stored."""
    result = _ffmpeg("-v", "error", "-xerror", *_input(source), *output_args, "-y", str(target))
    complaint = result.stderr.strip()
    if result.returncode != 0 or any(word in complaint.lower() for word in _DAMAGED):
        target.unlink(missing_ok=True)
        last = complaint.splitlines()[-1][:200] if complaint else f"exit status {result.returncode}"
        raise ReelcastError(errors.MEDIA_UNREADABLE, f"The file cannot be decoded to its end ({last}).")


def _prepare_clip(source: Path, probe: _Probe, limits: MediaLimits) -> PreparedMedia:
    size = _SIZE.search(probe.video[0])
    if size is None:
        raise ReelcastError(errors.MEDIA_UNREADABLE, "The clip's picture size cannot be read.")
    width, height = int(size.group(1)), int(size.group(2))
    clip_limits = dataclasses.replace(limits, max_pixels=min(limits.max_pixels, CLIP_MAX_SOURCE_PIXELS))
    _check_pixels(width, height, clip_limits, "clip")
    rate = _FPS.search(probe.video[0])
    if rate is not None and float(rate.group(1)) > CLIP_MAX_SOURCE_FPS:
        raise ReelcastError(
            errors.MEDIA_STREAMS_UNSUPPORTED,
            f"The clip runs at {rate.group(1)} frames a second; at most {CLIP_MAX_SOURCE_FPS:g}.",
        )
    _check_duration(probe.duration, limits.max_clip_seconds, "clip")
    box_w, box_h = CLIP_BOX
    scale = (
        f"scale='min(iw,{box_w})':'min(ih,{box_h})':force_original_aspect_ratio=decrease"
        ":force_divisible_by=2,setsar=1"
    )
    target = _output(source, ".mp4")
    _transcode(
        source,
        target,
        [
            "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-vf", scale, "-fpsmax", str(CLIP_MAX_FPS),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart",
        ],
    )  # fmt: skip
    stored = _probe(target)
    stored_size = _SIZE.search(stored.video[0]) if stored.video else None
    if stored_size is None:
        target.unlink(missing_ok=True)
        raise ReelcastError(errors.MEDIA_UNREADABLE, "The clip has no picture after decoding.")
    return PreparedMedia(
        job_service_pb2.MEDIA_KIND_CLIP,
        target,
        "video/mp4",
        int(stored_size.group(1)),
        int(stored_size.group(2)),
        stored.duration,
    )


def _prepare_audio(source: Path, probe: _Probe, limits: MediaLimits) -> PreparedMedia:
    _check_duration(probe.duration, limits.max_audio_seconds, "track")
    target = _output(source, ".wav")
    _transcode(
        source,
        target,
        [
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
            "-ac", "2", "-ar", str(AUDIO_RATE), "-c:a", "pcm_s16le",
        ],
    )  # fmt: skip
    stored = _probe(target)
    return PreparedMedia(
        job_service_pb2.MEDIA_KIND_AUDIO, target, "audio/wav", duration_seconds=stored.duration
    )
