"""The built-in stages end to end through the gRPC server: a real, playable MP4 with speech, from a brief.

One 20 s 1280x720 job with burned-in sentence captions is rendered once per module and measured many ways.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from PIL import Image

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins.builtin.captions import parse_srt
from reelcast.server.config import Settings
from tests.media import (
    JobRun,
    audio_rms,
    band,
    decode_exit_code,
    decoded_video_seconds,
    frame_at,
    job_settings,
    lighthouse_spec,
    mean_abs_difference,
    probe,
    run_job,
    video_frame_times,
    wav_seconds,
)

SEED_BOUNDARIES = (10.0, 30.0, 50.0, 70.0, 90.0, 100.0)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    settings = job_settings(tmp_path_factory.mktemp("pipeline") / "data")
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic="How bees make honey",
            audience="kids",
            goal="understand the hive",
            # The writer fills the 20 s only with what it is told (without key points it writes ~6 s).
            key_points=[
                "Worker bees collect nectar from flowers and carry it home.",
                "Inside the hive, the nectar passes from bee to bee and turns into honey.",
                "The bees fan it with their wings, then seal each cell with wax.",
            ],
        ),
        # Still cards and cuts (today's concat path): the title area stays put while the burned captions
        # change (motion and transitions are tests/test_motion.py's).
        plan=job_pb2.Plan(
            target_duration_seconds=20, motion=job_pb2.MOTION_NONE, transition=job_pb2.TRANSITION_NONE
        ),
        # Sentence captions: this module measures the sentence cues that the visuals stage burns into
        # frames (word captions, the default, are tests/test_word_captions.py's).
        render=job_pb2.RenderSpec(
            width=1280, height=720, captions=True, caption_style=job_pb2.CAPTION_STYLE_SENTENCES
        ),
    )
    return run_job(settings, with_defaults(spec))


def narration_seconds(run: JobRun) -> float:
    return sum(wav_seconds(path) for path in run.scene_wavs())


def scene_spans(run: JobRun) -> list[tuple[float, float]]:
    spans, start = [], 0.0
    for path in run.scene_wavs():
        duration = wav_seconds(path)
        spans.append((start, start + duration))
        start += duration
    return spans


def test_job_succeeds_with_every_output_field(rendered: JobRun) -> None:
    assert rendered.job.status == job_pb2.JOB_STATUS_SUCCEEDED, rendered.job.failure
    output = rendered.job.output
    assert Path(output.video_path).is_file() and output.video_path.endswith(".mp4")
    assert output.size_bytes == Path(output.video_path).stat().st_size > 10_000
    assert Path(output.thumbnail_path).read_bytes()[:2] == b"\xff\xd8"  # JPEG magic
    assert Path(output.subtitle_path).suffix == ".srt"
    assert abs(output.duration_seconds - probe(Path(output.video_path)).duration) < 0.02


def test_mp4_decodes_fully_with_exit_code_zero(rendered: JobRun) -> None:
    assert decode_exit_code(Path(rendered.job.output.video_path)) == 0


def test_narration_is_fifteen_to_twenty_seconds_and_video_matches_it(rendered: JobRun) -> None:
    narration = narration_seconds(rendered)
    # Within 10 % over the 20 s target, the writer's own tolerance (tests/test_builtin_writer.py): the
    # narration holds about 2 s of pauses between scenes and sentences, and the writer's next shorter
    # choice (one line less) speaks about 18 s.
    assert 15.0 <= narration <= 22.0
    video = Path(rendered.job.output.video_path)
    assert abs(probe(video).duration - narration) <= 0.25
    assert abs(decoded_video_seconds(video) - narration) <= 0.25


def test_video_is_h264_yuv420p_at_requested_resolution_and_fps_with_aac(rendered: JobRun) -> None:
    facts = probe(Path(rendered.job.output.video_path))
    assert (facts.width, facts.height) == (1280, 720)
    assert facts.fps == 30
    assert facts.video_codec == "h264" and facts.pixel_format == "yuv420p"
    assert facts.audio_codec == "aac"


def test_mp4_has_faststart_moov_before_mdat(rendered: JobRun) -> None:
    head = Path(rendered.job.output.video_path).read_bytes()[:200_000]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


def test_audio_is_speech_not_silence(rendered: JobRun) -> None:
    assert audio_rms(Path(rendered.job.output.video_path)) > 0.02


def test_frames_at_scene_midpoints_differ_between_scenes(rendered: JobRun) -> None:
    video = Path(rendered.job.output.video_path)
    spans = scene_spans(rendered)
    assert len(spans) >= 2
    frames = [frame_at(video, (start + end) / 2) for start, end in spans]
    for first, second in itertools.pairwise(frames):
        assert mean_abs_difference(first, second) > 5


def test_burned_captions_change_within_a_scene_at_cue_boundaries(rendered: JobRun) -> None:
    video = Path(rendered.job.output.video_path)
    cues = parse_srt(Path(rendered.job.output.subtitle_path).read_text(encoding="utf-8"))
    start, end = scene_spans(rendered)[0]
    in_first_scene = [cue for cue in cues if start - 0.01 <= cue[0] and cue[1] <= end + 0.01]
    assert len(in_first_scene) >= 2, cues
    first, second = in_first_scene[0], in_first_scene[1]
    frame_one = frame_at(video, (first[0] + first[1]) / 2)
    frame_two = frame_at(video, (second[0] + second[1]) / 2)
    size = (160, 90)
    # The caption band differs, the title area above it does not: the change is the caption.
    assert mean_abs_difference(band(frame_one, size, 0.75, 0.95), band(frame_two, size, 0.75, 0.95)) > 3
    assert mean_abs_difference(band(frame_one, size, 0.0, 0.4), band(frame_two, size, 0.0, 0.4)) < 1.5


def test_sidecar_srt_timing_follows_the_measured_narration(rendered: JobRun) -> None:
    cues = parse_srt(Path(rendered.job.output.subtitle_path).read_text(encoding="utf-8"))
    assert cues and all(text.strip() for _, _, text in cues)
    assert cues[0][0] == 0.0
    assert abs(cues[-1][1] - narration_seconds(rendered)) <= 0.002
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert abs(end - start) <= 0.002  # contiguous: each cue ends where the next begins
    for scene_start, _ in scene_spans(rendered):
        # SRT times are whole milliseconds: a cue starts within 2 ms of each scene.
        assert any(abs(scene_start - cue[0]) <= 0.002 for cue in cues), (scene_start, cues)
    spoken = " ".join(text for _, _, text in cues).split()
    script = (rendered.work_dir / "script.json").read_text(encoding="utf-8")
    assert spoken and all(word in script for word in spoken)


def test_rendering_reports_at_least_five_distinct_increasing_percents(rendered: JobRun) -> None:
    percents = [
        event.stage_percent
        for event in rendered.events
        if event.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and event.stage == "render"
    ]
    distinct = sorted(set(percents))
    assert len(distinct) >= 5, percents
    assert percents == sorted(percents)
    assert percents[-1] == 100.0


def test_overall_percent_never_decreases_and_crosses_seed_boundaries_in_order(rendered: JobRun) -> None:
    percents = [event.job_percent for event in rendered.events]
    assert percents == sorted(percents)
    starts = {
        event.stage: event.job_percent
        for event in rendered.events
        if event.kind == job_pb2.EVENT_KIND_STEP_STATUS and event.stage_status == job_pb2.STEP_STATUS_RUNNING
    }
    assert [
        starts[name] for name in ("script", "voice", "visuals", "render", "postprocess")
    ] == pytest.approx(SEED_BOUNDARIES[:5])
    assert rendered.events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert rendered.events[-1].job_percent == 100.0
    crossed = [next(i for i, p in enumerate(percents) if p >= boundary) for boundary in SEED_BOUNDARIES]
    assert crossed == sorted(crossed)


def test_every_stage_reports_progress_within_its_own_span(rendered: JobRun) -> None:
    for name in ("script", "voice", "visuals", "render", "postprocess"):
        inner = [
            e.stage_percent
            for e in rendered.events
            if e.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and e.stage == name and 0 < e.stage_percent < 100
        ]
        assert inner, f"{name} reported no progress between 0 and 100"


def test_ffmpeg_log_has_the_seed_format(rendered: JobRun) -> None:
    log = (rendered.settings.ffmpeg_logs_dir / f"{rendered.job.id}.log").read_text(encoding="utf-8")
    lines = log.splitlines()
    assert lines[0] == f"FFmpeg Render Log - Job ID: {rendered.job.id}"
    assert lines[1] == f"Correlation ID: {rendered.job.correlation_id}"
    assert lines[2].startswith("Started: ") and lines[2].endswith(" UTC")
    assert lines[3] == "Resolution: 1280x720"
    assert lines[4].startswith("FFmpeg Path: ") and "imageio_ffmpeg" in lines[4]
    assert lines[5].startswith("Command: ") and "-f concat" in lines[5] and "-loop" not in lines[5]
    assert lines[6] == "-" * 80
    assert any(line.startswith("[stderr] ") for line in lines[7:-3])
    assert lines[-3] == "-" * 80
    assert lines[-2].startswith("Completed: ")
    assert lines[-1] == "Exit Code: 0"


@pytest.mark.parametrize("variable_frame_rate", [False, True], ids=["cfr", "vfr"])
def test_both_frame_rate_modes_give_a_playable_mp4_as_long_as_the_narration(
    tmp_path: Path, variable_frame_rate: bool
) -> None:
    spec = lighthouse_spec(
        # Sentence captions, so that a frame is an image (word captions split frames at every word:
        # tests/test_word_captions.py).
        job_pb2.RenderSpec(
            width=640,
            height=360,
            captions=True,
            caption_style=job_pb2.CAPTION_STYLE_SENTENCES,
            variable_frame_rate=variable_frame_rate,
        )
    )
    settings = job_settings(tmp_path / "data")
    run = run_job(settings, with_defaults(spec))
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    video = Path(run.job.output.video_path)
    assert decode_exit_code(video) == 0
    narration = narration_seconds(run)
    assert 4.0 <= narration <= 12.0
    assert abs(probe(video).duration - narration) <= 0.1
    assert abs(run.job.output.duration_seconds - narration) <= 0.1
    # The picture lasts as long as the sound: the last frame ends where the narration ends.
    frames = video_frame_times(video)
    last_start, last_duration = frames[-1]
    assert abs(last_start + last_duration - narration) <= 0.05, frames[-3:]
    visuals = json.loads((run.work_dir / "visuals.json").read_text(encoding="utf-8"))
    images = len(visuals["frames"])
    if variable_frame_rate:
        # One encoded frame per image, plus the one that holds the last image to the end.
        assert len(frames) == images + 1, frames
    else:
        assert len(frames) == round(narration * 30), (len(frames), narration)
    # The thumbnail (the poster) shows the second scene (taken at its midpoint), not the opening one.
    thumbnail = _small_rgb(Path(run.job.output.thumbnail_path))
    first, second = (_small_rgb(run.work_dir / image) for image in visuals["scene_images"][:2])
    assert mean_abs_difference(thumbnail, second) < mean_abs_difference(thumbnail, first) / 3


def _small_rgb(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").resize((160, 90)).tobytes()


def _seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _eta(event: job_pb2.JobProgress) -> float:
    assert event.HasField("eta"), event
    return event.eta.seconds + event.eta.nanos / 1e9


def test_eta_is_within_a_factor_of_two_of_the_true_remaining_time(tmp_path: Path) -> None:
    # A slow preset on one encoder thread makes the render the bulk of the job, as it is at real sizes. The
    # first job measures the stages; the second, on a restarted server, estimates those it has not started
    # from them.
    settings = Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        x264_preset="slower",
        ffmpeg_extra_args=("-threads", "1"),
    )
    spec = with_defaults(
        job_pb2.JobSpec(
            brief=job_pb2.Brief(
                topic="Lighthouses",
                key_points=[
                    "A lighthouse warns ships away from rocks.",
                    "Its lamp turns, so each light flashes.",
                ],
            ),
            plan=job_pb2.Plan(target_duration_seconds=10),
            render=job_pb2.RenderSpec(width=640, height=360, fps=30),
        )
    )
    first = run_job(settings, spec)
    assert first.job.status == job_pb2.JOB_STATUS_SUCCEEDED, first.job.failure
    run = run_job(settings, spec)
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    end = _seconds(run.events[-1].time)
    render_started = next(
        e
        for e in run.events
        if e.kind == job_pb2.EVENT_KIND_STEP_STATUS
        and e.stage == "render"
        and e.stage_status == job_pb2.STEP_STATUS_RUNNING
    )
    halfway = next(
        e
        for e in run.events
        if e.kind == job_pb2.EVENT_KIND_STEP_PROGRESS and e.stage == "render" and e.stage_percent >= 50
    )
    for checkpoint in (render_started, halfway):
        remaining = end - _seconds(checkpoint.time)
        assert remaining > 0.5, "the render was too fast to measure an ETA against"
        ratio = _eta(checkpoint) / remaining
        assert 0.5 <= ratio <= 2.0, (checkpoint.stage_percent, _eta(checkpoint), remaining)
