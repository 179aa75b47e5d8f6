"""Word captions (the default style): grouping, timing, the ASS file libass draws, WebVTT, and where the
captions land on rendered frames of each aspect.

Two short jobs per aspect render the same script with word captions burned in and as soft subtitles (the
cards are the same: the visuals stage keeps the caption area clear and leaves the spoken text to the captions
either way); the caption is what differs between their frames at the same moment, so its bounding box is
measured, not assumed.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import webvtt
from PIL import Image

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import validate_spec, with_defaults
from reelcast.plugins.artifacts import NarrationScene, WordTiming
from reelcast.plugins.builtin import ass
from reelcast.plugins.builtin.captions import (
    MAX_GROUP_WORDS,
    MAX_LEAD_IN_SECONDS,
    MAX_QUICK_GROUP_WORDS,
    MIN_CUE_SECONDS,
    build_word_cues,
    estimate_words,
    group_words,
    parse_srt,
    speech_span,
)
from reelcast.plugins.builtin.render import ass_filter
from tests.media import (
    FFMPEG,
    JobRun,
    difference_mask,
    frame_on_screen,
    job_settings,
    run_job,
    video_frame_times,
)

SCRIPT = [
    job_pb2.Scene(title="Hives", narration="Bees make honey from nectar. They store it in wax cells."),
    job_pb2.Scene(title="Dance", narration="A scout dances, and the others follow her to flowers."),
]
# A caption pixel differs from the same frame without captions by more than this (0-255, any channel).
CAPTION_DIFFERENCE = 60


@dataclass
class Pair:
    """The same script rendered with word captions burned in and with soft ones (none in the picture)."""

    captioned: JobRun
    plain: JobRun
    width: int
    height: int

    @property
    def video(self) -> Path:
        return Path(self.captioned.job.output.video_path)


def _render(
    tmp: Path, width: int, height: int, aspect: job_pb2.Aspect.ValueType, burned: bool, vfr: bool
) -> JobRun:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Bees", aspect=aspect),
        script=SCRIPT,
        render=job_pb2.RenderSpec(
            width=width,
            height=height,
            captions=True,
            caption_mode=job_pb2.CAPTION_MODE_BURNED if burned else job_pb2.CAPTION_MODE_SOFT,
            variable_frame_rate=vfr,
        ),
    )
    run = run_job(job_settings(tmp / "data"), with_defaults(spec))
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    return run


def _pair(tmp: Path, width: int, height: int, aspect: job_pb2.Aspect.ValueType, *, vfr: bool = False) -> Pair:
    captioned = _render(tmp / "words", width, height, aspect, True, vfr)
    return Pair(captioned, _render(tmp / "plain", width, height, aspect, False, vfr), width, height)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return _pair(tmp_path_factory.mktemp("portrait"), 360, 640, job_pb2.ASPECT_VERTICAL_9_16)


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    # At a variable frame rate: the karaoke must still get a frame per word.
    return _pair(tmp_path_factory.mktemp("landscape"), 640, 360, job_pb2.ASPECT_WIDESCREEN_16_9, vfr=True)


@pytest.fixture(scope="module")
def square(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return _pair(tmp_path_factory.mktemp("square"), 360, 360, job_pb2.ASPECT_SQUARE_1_1)


def _caption_mask(pair: Pair, seconds: float) -> tuple[Image.Image, Image.Image]:
    """The captioned frame at ``seconds`` and the mask of its pixels that the caption changed."""
    captioned = frame_on_screen(pair.video, seconds, pair.width, pair.height)
    plain = frame_on_screen(Path(pair.plain.job.output.video_path), seconds, pair.width, pair.height)
    return captioned, difference_mask(captioned, plain, CAPTION_DIFFERENCE)


def _cues(run: JobRun) -> list[tuple[float, float, str]]:
    return [
        (caption.start_time.in_milliseconds() / 1000, caption.end_time.in_milliseconds() / 1000, caption.text)
        for caption in webvtt.read(run.job.output.webvtt_path).captions
    ]


def _mid_cues(run: JobRun) -> list[float]:
    return [(start + end) / 2 for start, end, _ in _cues(run)]


def _assert_inside_safe_area(pair: Pair, bottom_limit: float) -> None:
    moments = _mid_cues(pair.captioned)
    assert len(moments) >= 4
    for moment in moments:
        _, mask = _caption_mask(pair, moment)
        box = mask.getbbox()
        assert box is not None, f"no caption drawn at {moment:.2f} s"
        left, top, right, bottom = box
        assert left >= pair.width * 0.1 and right <= pair.width * 0.9, (moment, box)
        assert top >= pair.height * 0.1, (moment, box)
        assert bottom <= pair.height * bottom_limit, (moment, box)
        # Big enough to read on a phone: at least 4 % of the frame's short side tall.
        assert bottom - top >= min(pair.width, pair.height) * 0.04, (moment, box)


def test_portrait_word_captions_lie_above_the_bottom_fifth_inside_the_safe_margins(portrait: Pair) -> None:
    _assert_inside_safe_area(portrait, 0.8)


def test_landscape_word_captions_lie_inside_the_title_safe_area(landscape: Pair) -> None:
    _assert_inside_safe_area(landscape, 0.9)


def test_square_word_captions_lie_inside_the_title_safe_area(square: Pair) -> None:
    _assert_inside_safe_area(square, 0.9)


def test_variable_frame_rate_word_captions_get_a_frame_per_change_and_end_with_the_sound(
    landscape: Pair,
) -> None:
    frames = video_frame_times(landscape.video)
    plain = video_frame_times(Path(landscape.plain.job.output.video_path))
    events = _ass_events(landscape.captioned)
    words = sum(len(event.words) for event in events)
    assert len(frames) >= len(events) + words // 2 > len(plain)
    duration = landscape.captioned.job.output.duration_seconds
    assert abs(frames[-1][0] + frames[-1][1] - duration) <= 0.05


def _changed_pixels(frame: Image.Image, mask: Image.Image) -> list[tuple[int, int, int]]:
    """The RGB values of the pixels the caption changed."""
    rgb, changed = frame.tobytes(), mask.convert("L").tobytes()
    return [tuple(rgb[i * 3 : i * 3 + 3]) for i, flag in enumerate(changed) if flag]  # type: ignore[misc]


def _gold_pixels(frame: Image.Image, mask: Image.Image) -> int:
    red, green, blue = ass.SPOKEN_RGB
    return sum(
        1
        for r, g, b in _changed_pixels(frame, mask)
        if abs(r - red) < 40 and abs(g - green) < 40 and abs(b - blue) < 60
    )


@pytest.mark.parametrize("aspect", ["portrait", "landscape"])
def test_the_spoken_word_is_highlighted_on_rendered_frames(
    aspect: str, request: pytest.FixtureRequest
) -> None:
    pair: Pair = request.getfixturevalue(aspect)
    events = _ass_events(pair.captioned)
    several = [event for event in events if len(event.words) >= 3]
    assert several, events
    event = several[0]
    # In the middle of the first word only it is lit; in the middle of the last, all are.
    first = event.start + event.durations[0] / 200
    last = event.start + sum(event.durations[:-1]) / 100 + event.durations[-1] / 200
    early_frame, early_mask = _caption_mask(pair, first)
    late_frame, late_mask = _caption_mask(pair, last)
    early, late = _gold_pixels(early_frame, early_mask), _gold_pixels(late_frame, late_mask)
    assert early > 20, early
    assert late > early * 1.5, (early, late)
    # The unspoken words are white meanwhile.
    white = sum(1 for pixel in _changed_pixels(early_frame, early_mask) if min(pixel) > 215)
    assert white > 20, white


@dataclass
class AssEvent:
    start: float
    end: float
    words: list[str]
    durations: list[int]


def _ass_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _ass_events(run: JobRun) -> list[AssEvent]:
    text = (run.work_dir / "captions.ass").read_text(encoding="utf-8")
    events = []
    for line in text.splitlines():
        if not line.startswith("Dialogue:"):
            continue
        fields = line.split(",", 9)
        # An empty first syllable is a lead-in: the cue shows before its first word is spoken.
        karaoke = re.findall(r"\{\\k(\d+)\}([^{\\]*)", fields[9])
        lead = int(karaoke[0][0]) if karaoke and not karaoke[0][1] else 0
        spoken = karaoke[1:] if lead or (karaoke and not karaoke[0][1]) else karaoke
        events.append(
            AssEvent(
                _ass_seconds(fields[1]) + lead / 100,
                _ass_seconds(fields[2]),
                [word.strip() for _, word in spoken],
                [int(duration) for duration, _ in spoken],
            )
        )
    return events


def test_ass_file_uses_the_bundled_bold_font_with_an_outline_and_karaoke_on_every_word(
    portrait: Pair,
) -> None:
    text = (portrait.captioned.work_dir / "captions.ass").read_text(encoding="utf-8")
    assert f"PlayResX: {portrait.width}" in text and f"PlayResY: {portrait.height}" in text
    style = next(line for line in text.splitlines() if line.startswith("Style: "))
    fields = style.removeprefix("Style: ").split(",")
    assert fields[1] == ass.FONT_NAME and ass.FONT_FILE.is_file()
    assert float(fields[16]) >= 2  # outline width in pixels
    events = _ass_events(portrait.captioned)
    spoken = " ".join(scene.narration for scene in SCRIPT).split()
    assert [word for event in events for word in event.words] == spoken
    for event in events:
        assert 1 <= len(event.words) <= MAX_QUICK_GROUP_WORDS
        # The \k durations fill the event: the last word is lit until the cue goes.
        assert abs(sum(event.durations) / 100 - (event.end - event.start)) <= 0.02


def test_webvtt_is_valid_and_carries_the_same_word_cues_as_the_srt(portrait: Pair) -> None:
    output = portrait.captioned.job.output
    assert Path(output.webvtt_path).name == "captions.vtt"
    vtt = _cues(portrait.captioned)
    srt = parse_srt(Path(output.subtitle_path).read_text(encoding="utf-8"))
    assert len(vtt) == len(srt) >= 4
    for (start, end, text), (srt_start, srt_end, srt_text) in zip(vtt, srt, strict=True):
        assert abs(start - srt_start) <= 0.001 and abs(end - srt_end) <= 0.001
        assert text == srt_text
        assert 1 <= len(text.split()) <= MAX_QUICK_GROUP_WORDS
        assert end > start
    # No cue runs across a sentence end.
    assert all(not re.search(r"[.!?] \S", text) for _, _, text in vtt)


def test_word_cues_follow_the_speech_of_each_scene(portrait: Pair) -> None:
    run = portrait.captioned
    cues = _cues(run)
    starts = [start for start, _, _ in cues]
    assert starts == sorted(starts)
    voice = (run.work_dir / "voice.json").read_text(encoding="utf-8")
    scenes = json.loads(voice)["scenes"]
    for scene in scenes:
        begin, finish = speech_span(run.work_dir / scene["wav"], scene["start"], scene["duration"])
        inside = [cue for cue in cues if scene["start"] <= cue[0] < scene["start"] + scene["duration"]]
        assert inside
        # The first caption of a scene appears when its speech starts (not with the scene's silence): at the
        # first word's time when the voice gave word timings (Piper's first word starts within a frame or two
        # of where the audio's energy rises), at the energy's rise when the words are estimated.
        words = scene.get("words")
        if words:
            assert abs(inside[0][0] - words[0]["start"]) <= 0.002
            assert abs(words[0]["start"] - begin) <= 0.05
        else:
            assert abs(inside[0][0] - begin) <= 0.002
        assert inside[-1][1] <= scene["start"] + scene["duration"] + 0.002
        assert finish - begin > 0.5


def test_sentence_style_keeps_burned_sentence_bands_and_writes_no_ass(tmp_path: Path) -> None:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Bees"),
        # Still cards: the burned bands are the picture (with motion libass draws them: test_motion.py).
        plan=job_pb2.Plan(motion=job_pb2.MOTION_NONE, transition=job_pb2.TRANSITION_NONE),
        script=SCRIPT,
        render=job_pb2.RenderSpec(
            width=320, height=180, captions=True, caption_style=job_pb2.CAPTION_STYLE_SENTENCES
        ),
    )
    run = run_job(job_settings(tmp_path / "data"), with_defaults(spec))
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    assert run.job.spec.render.caption_style == job_pb2.CAPTION_STYLE_SENTENCES
    assert not (run.work_dir / "captions.ass").exists()
    texts = [text for _, _, text in _cues(run)]
    assert " ".join(texts) == " ".join(scene.narration for scene in SCRIPT)
    assert all(text.endswith(".") and len(text.split()) > MAX_GROUP_WORDS for text in texts)
    # One burned frame per sentence cue, drawn by the visuals stage.
    assert len(list((run.work_dir / "frames").glob("cue-*.png"))) == len(texts)


def test_captions_default_to_the_words_style() -> None:
    spec = with_defaults(job_pb2.JobSpec(render=job_pb2.RenderSpec(captions=True)))
    assert spec.render.caption_style == job_pb2.CAPTION_STYLE_WORDS
    plain = with_defaults(job_pb2.JobSpec(render=job_pb2.RenderSpec(captions=False)))
    assert plain.render.caption_style == job_pb2.CAPTION_STYLE_UNSPECIFIED


def test_an_unknown_caption_style_is_a_field_violation() -> None:
    spec = job_pb2.JobSpec(brief=job_pb2.Brief(topic="Bees"), render=job_pb2.RenderSpec(caption_style=7))  # type: ignore[arg-type]
    assert [v.field for v in validate_spec(spec)] == ["spec.render.caption_style"]


# -- grouping and timing, without rendering ----------------------------------------------------------------


def _words(text: str) -> list[WordTiming]:
    return [{"text": word, "start": float(i), "end": i + 0.8} for i, word in enumerate(text.split())]


def _texts(groups: list[list[WordTiming]]) -> list[str]:
    return [" ".join(word["text"] for word in group) for group in groups]


def test_groups_break_at_phrases_never_cross_sentences_and_stay_balanced() -> None:
    groups = group_words(_words("Yes. Honey bees visit many flowers, every single day of summer. Wow!"))
    assert _texts(groups) == [
        "Yes.",
        "Honey bees visit",
        "many flowers,",
        "every single day",
        "of summer.",
        "Wow!",
    ]
    assert all(1 <= len(group) <= MAX_GROUP_WORDS for group in groups)


def test_given_word_timings_are_used_as_they_are(tmp_path: Path) -> None:
    words: list[WordTiming] = [
        {"text": "One", "start": 0.30, "end": 0.55},
        {"text": "two", "start": 0.61, "end": 0.90},
        {"text": "three.", "start": 1.02, "end": 1.40},
        {"text": "Four", "start": 2.50, "end": 2.90},
    ]
    scene: NarrationScene = {"wav": "missing.wav", "start": 0.0, "duration": 3.2, "words": words}
    cues = build_word_cues(["One two three. Four"], [scene], lambda relative: tmp_path / relative)
    assert [cue.text for cue in cues] == ["One two three.", "Four"]
    # "Four" holds until the scene's end at 3.2 s, 0.7 s: it shows just enough before its word to last
    # MIN_CUE_SECONDS, out of the pause (a lead-in of at most MAX_LEAD_IN_SECONDS).
    lead = MIN_CUE_SECONDS - (3.2 - 2.50)
    assert 0 < lead <= MAX_LEAD_IN_SECONDS
    assert cues[0].start == 0.30 and cues[1].start == pytest.approx(2.50 - lead)
    # A long pause clears the screen: the first cue ends a moment after its last word, before the next.
    assert 1.40 <= cues[0].end < cues[1].start
    assert cues[1].end == pytest.approx(3.2)
    assert [word["start"] for word in cues[0].words] == [0.30, 0.61, 1.02]


def test_estimated_words_share_the_span_by_characters() -> None:
    words = estimate_words("aa bbbb cc", 1.0, 2.6)
    assert [word["text"] for word in words] == ["aa", "bbbb", "cc"]
    assert words[0]["start"] == 1.0 and words[-1]["end"] == pytest.approx(2.6)
    assert words[1]["end"] - words[1]["start"] == pytest.approx(2 * (words[0]["end"] - words[0]["start"]))


def test_ass_text_cannot_open_override_blocks_or_escapes() -> None:
    assert "{" not in ass.ass_text("{\\b1}x") and "\\b" not in ass.ass_text("{\\b1}x")
    assert "\\N" not in ass.ass_text("a\\Nb")


def test_hebrew_and_arabic_are_drawn_in_the_bundled_fonts_never_a_system_one() -> None:
    assert ass.ass_text("שלום.") == "{\\fnNoto Sans Hebrew}שלום{\\fnNoto Sans ExtraBold}."
    assert ass.ass_text("مرحبا") == "{\\fnNoto Naskh Arabic}مرحبا{\\fnNoto Sans ExtraBold}"
    assert ass.ass_text("Ça très") == "Ça très"


def test_long_words_are_drawn_smaller_to_stay_inside_the_margins() -> None:
    place = ass.placement(360, 640)
    lines, size = ass.fitted_lines(["Supercalifragilisticexpialidocious"], place, 360)
    assert size < place.font_size
    assert ass.text_width(" ".join(lines[0]), size) <= 360 - 2 * place.margin_x


def test_ass_filter_paths_survive_ffmpegs_filtergraph_escaping(tmp_path: Path) -> None:
    folder = tmp_path / "it's a [dir], with: colons;"
    folder.mkdir()
    cues = build_word_cues(
        ["Hello there."],
        [{"wav": "none.wav", "start": 0.0, "duration": 1.0}],
        lambda relative: folder / relative,
    )
    subtitles = folder / "captions.ass"
    subtitles.write_text(ass.to_ass(cues, 320, 180), encoding="utf-8")
    image = folder / "frame.png"
    result = subprocess.run(
        [
            FFMPEG, "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=320x180:d=1",
            "-vf", ass_filter(str(subtitles), str(ass.FONTS_DIR)), "-ss", "0.5", "-frames:v", "1", str(image),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(image).convert("L").getbbox() is not None  # the caption was drawn
