"""Motion, transitions and uploaded clip backgrounds on rendered frames, and the file's tags (BT.709, the
audio language, chapters, the poster frame).

Two small renders (320x180, under 5 s) through the real stages, each shared by the module's tests:
- ``moving``: the defaults (Ken Burns and crossfades) with burned sentence captions;
- ``still``: ``MOTION_NONE`` with wipes, its last scene on an uploaded clip (made here with ffmpeg).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.builtin.motion import timeline
from reelcast.plugins.host import PluginHost
from reelcast.plugins.stage import MediaFile
from reelcast.plugins.testing import StageHarness
from tests.media import (
    FFMPEG,
    band,
    decode_exit_code,
    frame_number,
    frames_ssim,
    input_dump,
    mean_abs_difference,
    mix,
)

WIDTH, HEIGHT, FPS = 320, 180, 30
SIZE = (WIDTH, HEIGHT)
SCRIPT = [
    job_pb2.Scene(title="Hives", narration="Bees make honey.", visual_hint="title"),
    job_pb2.Scene(title="Flowers", narration="They fly to flowers."),
    job_pb2.Scene(title="Wax", narration="Then they seal the wax."),
]
CLIP_ID = "media-clip-1"


@dataclass
class Render:
    harness: StageHarness
    spec: job_pb2.JobSpec

    @property
    def video(self) -> Path:
        return self.harness.path(self.harness.artifacts["video"])

    def scene_frames(self) -> list[tuple[int, int]]:
        """(first, end) frame numbers of each scene, from the narration's scene times."""
        narration = json.loads(self.harness.path("voice.json").read_text(encoding="utf-8"))
        starts = [round(scene["start"] * FPS) for scene in narration["scenes"]]
        return list(zip(starts, [*starts[1:], round(narration["duration"] * FPS)], strict=True))


def _render(
    root: Path,
    plan: job_pb2.Plan,
    script: list[job_pb2.Scene] = SCRIPT,
    media: dict[str, MediaFile] | None = None,
) -> Render:
    harness = StageHarness(root / "work", root / "logs", PluginHost.load())
    harness.media.update(media or {})
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Bees", language="de"),
        plan=plan,
        script=script,
        render=job_pb2.RenderSpec(
            width=WIDTH, height=HEIGHT, fps=FPS, captions=True, caption_style=job_pb2.CAPTION_STYLE_SENTENCES
        ),
    )
    for stage in ("script", "voice", "visuals", "render", "postprocess"):
        harness.run(stage, spec, settings={"x264_preset": "ultrafast"} if stage == "render" else None)
    return Render(harness, spec)


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> Render:
    return _render(tmp_path_factory.mktemp("moving"), job_pb2.Plan())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    # 1 s at 4:3, shorter than its scene (so it loops) and another shape than the frame (so it is cropped).
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=400x300:rate=30:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Render:
    scenes = [job_pb2.Scene(), job_pb2.Scene(), job_pb2.Scene()]
    for scene, given in zip(scenes, SCRIPT, strict=True):
        scene.CopyFrom(given)
    scenes[2].background_media_id = CLIP_ID
    media = {CLIP_ID: MediaFile(CLIP_ID, "clip", clip, "video/mp4", 400, 300, 1.0)}
    render = _render(
        tmp_path_factory.mktemp("still"),
        job_pb2.Plan(motion=job_pb2.MOTION_NONE, transition=job_pb2.TRANSITION_WIPE),
        scenes,
        media,
    )
    return render


def test_timeline_keeps_the_narrations_length_and_centres_each_transition_on_its_scene_change() -> None:
    clips, joins = timeline([0.0, 1.5, 3.2], 4.0, 30, transitions=True)
    total = sum(clip.frames for clip in clips) - sum(join.frames for join in joins)
    assert total == 120
    for join, change in zip(joins, (45, 96), strict=True):
        assert join.frames >= 2 and join.offset + join.frames // 2 == change
    cut_clips, cut_joins = timeline([0.0, 1.5, 3.2], 4.0, 30, transitions=False)
    assert [clip.frames for clip in cut_clips] == [45, 51, 24] and all(j.frames == 0 for j in cut_joins)


def test_successive_frames_inside_a_scene_differ_with_ken_burns(moving: Render) -> None:
    assert decode_exit_code(moving.video) == 0
    for first, end in moving.scene_frames():
        middle = (first + end) // 2
        # Every frame moves on (a smooth gradient card changes little from one frame to the next: about
        # 0.9993 here), and a third of a second of motion changes the picture clearly.
        assert frames_ssim(moving.video, middle, middle + 1) < 0.9998, (first, end)
        assert frames_ssim(moving.video, middle - 5, middle + 5) < 0.995, (first, end)


def test_a_crossfades_middle_frame_is_a_blend_of_its_two_scenes(moving: Render) -> None:
    (_, change), _ = moving.scene_frames()[:2]
    # Outside the transition on each side (at most 0.5 s long, centred on the change).
    before = frame_number(moving.video, change - 10, SIZE)
    after = frame_number(moving.video, change + 10, SIZE)
    middle = frame_number(moving.video, change, SIZE)
    top = (0.0, 0.7)  # above the caption band, which has its own cues
    parts = [band(frame, SIZE, *top) for frame in (before, after, middle)]
    blend = mix(parts[0], parts[1])
    to_blend = mean_abs_difference(parts[2], blend)
    assert to_blend < mean_abs_difference(parts[2], parts[0]) / 2
    assert to_blend < mean_abs_difference(parts[2], parts[1]) / 2


def test_sentence_captions_stay_still_while_the_picture_moves(moving: Render) -> None:
    cues = json.loads(moving.harness.path("visuals.json").read_text(encoding="utf-8"))["cues"]
    first, end = moving.scene_frames()[0]
    assert cues[0]["end"] * FPS >= end - 1  # one cue spans the whole first scene
    early, late = (frame_number(moving.video, number, SIZE) for number in (first + 3, end - 10))
    # The picture above the band moves; the caption band (text in a dark band) does not follow it.
    picture = mean_abs_difference(band(early, SIZE, 0.0, 0.6), band(late, SIZE, 0.0, 0.6))
    caption = mean_abs_difference(band(early, SIZE, 0.8, 0.9), band(late, SIZE, 0.8, 0.9))
    assert picture > 3 and caption < picture / 3, (picture, caption)
    # The band is drawn by libass over the caption-free scene images (not burned into moving frames).
    document = moving.harness.path("captions.ass").read_text(encoding="utf-8")
    assert "Bees make honey." in document and "\\p1" in document


def test_motion_none_holds_each_scene_still_and_a_wipe_uncovers_the_next_from_the_left(
    still: Render,
) -> None:
    (first, end), _ = still.scene_frames()[:2]
    centre = (first + end) // 2
    # Still: the same picture, up to the encoder's noise (moving frames differ far more, see above).
    assert frames_ssim(still.video, centre - 5, centre + 5) > 0.998
    before = frame_number(still.video, end - 10, SIZE)
    after = frame_number(still.video, end + 10, SIZE)
    middle = frame_number(still.video, end, SIZE)

    def columns(frame: bytes, left: float, right: float) -> bytes:
        rows = [frame[row * WIDTH * 3 : (row + 1) * WIDTH * 3] for row in range(int(HEIGHT * 0.7))]
        return b"".join(row[int(WIDTH * left) * 3 : int(WIDTH * right) * 3] for row in rows)

    # Half-way through the wipe the left part shows the next scene and the right part the last one.
    assert mean_abs_difference(columns(middle, 0, 0.3), columns(after, 0, 0.3)) < 3
    assert mean_abs_difference(columns(middle, 0.7, 1), columns(before, 0.7, 1)) < 3
    assert mean_abs_difference(columns(before, 0, 0.3), columns(after, 0, 0.3)) > 10


def test_a_scene_on_an_uploaded_clip_plays_the_clip_muted_and_cropped_to_fill(
    still: Render, clip: Path
) -> None:
    (_, _), (_, change), (_, end) = still.scene_frames()
    clips, _ = timeline([first / FPS for first, _ in still.scene_frames()], end / FPS, FPS, transitions=True)
    clip_start = clips[2].first
    number = change + 12  # past the wipe into the clip scene
    video_frame = band(frame_number(still.video, number, SIZE), SIZE, 0.0, 0.7)

    def clip_frame(seconds: float) -> bytes:
        raw = subprocess.run(
            [FFMPEG, "-v", "error", "-stream_loop", "-1", "-i", str(clip), "-vf",
             f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,crop={WIDTH}:{HEIGHT},"
             f"trim=start={seconds:.4f}", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        return band(raw, SIZE, 0.0, 0.7)

    seconds = ((number - clip_start) % FPS) / FPS  # the 1 s clip loops
    same = mean_abs_difference(video_frame, clip_frame(seconds))
    other = mean_abs_difference(video_frame, clip_frame((seconds + 0.5) % 1.0))
    assert same < 8 and same < other / 3, (same, other)


def test_the_file_is_tagged_bt709_with_the_briefs_language_and_a_chapter_per_scene(moving: Render) -> None:
    dump = input_dump(moving.video)
    # ffmpeg names the colour once when primaries, transfer and matrix are all BT.709.
    assert re.search(r"Video: h264.*yuv420p\(tv, bt709(, progressive)?\)", dump), dump
    assert re.search(r"Stream #0:\d+\[\w+\]\(deu\): Audio", dump), dump
    chapters = re.findall(r"Chapter #0:\d+: start ([\d.]+), end ([\d.]+)\s+Metadata:\s+title\s+: (.+)", dump)
    narration = json.loads(moving.harness.path("voice.json").read_text(encoding="utf-8"))
    assert [title for _, _, title in chapters] == ["Hives", "Flowers", "Wax"]
    for (start, _, _), scene in zip(chapters, narration["scenes"], strict=True):
        assert abs(float(start) - scene["start"]) < 0.002


def test_the_poster_is_the_middle_of_the_first_scene_after_the_title_card(moving: Render) -> None:
    from PIL import Image

    (_, _), (first, end), _ = moving.scene_frames()
    with Image.open(moving.harness.path(moving.harness.artifacts["thumbnail"])) as poster:
        picture = poster.convert("RGB").resize(SIZE).tobytes()
    middle = frame_number(moving.video, (first + end) // 2, SIZE)
    title_card = frame_number(moving.video, 5, SIZE)
    assert mean_abs_difference(picture, middle) < mean_abs_difference(picture, title_card) / 3


def test_motion_or_a_transition_at_a_variable_frame_rate_is_refused_when_the_job_is_created() -> None:
    from reelcast.jobs.validation import validate_spec, with_defaults

    def spec(plan: job_pb2.Plan) -> job_pb2.JobSpec:
        return job_pb2.JobSpec(
            brief=job_pb2.Brief(topic="Bees"), plan=plan, render=job_pb2.RenderSpec(variable_frame_rate=True)
        )

    refused = validate_spec(spec(job_pb2.Plan(motion=job_pb2.MOTION_KEN_BURNS)))
    assert [violation.field for violation in refused] == ["spec.plan.motion"]
    refused = validate_spec(spec(job_pb2.Plan(transition=job_pb2.TRANSITION_SLIDE)))
    assert [violation.field for violation in refused] == ["spec.plan.transition"]
    # Left to their defaults, a variable frame rate gets still cards and cuts; otherwise motion is on.
    filled = with_defaults(spec(job_pb2.Plan()))
    assert (filled.plan.motion, filled.plan.transition) == (job_pb2.MOTION_NONE, job_pb2.TRANSITION_NONE)
    filled = with_defaults(job_pb2.JobSpec(brief=job_pb2.Brief(topic="Bees")))
    assert (filled.plan.motion, filled.plan.transition) == (
        job_pb2.MOTION_KEN_BURNS,
        job_pb2.TRANSITION_CROSSFADE,
    )
