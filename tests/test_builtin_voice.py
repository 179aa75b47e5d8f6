"""The built-in voice stage's engines, with real synthesis: Piper (the default English voice, deterministic)
and espeak-ng (the other languages, and English when named), and the word timings both give."""

from __future__ import annotations

import array
import itertools
import json
import math
import re
import statistics
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest

from reelcast.jobs import tracing
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins.builtin.captions import build_word_cues
from reelcast.plugins.testing import PluginHost, StageHarness
from tests.media import (
    FFMPEG,
    decode_exit_code,
    job_settings,
    lighthouse_spec,
    probe,
    run_job,
    wav_seconds,
)
from tests.tracing import recorded_spans

NARRATIONS = (
    "Volcanoes form where magma rises through the crust. It erupts, cools, and builds a mountain!",
    "Most of the lava in 1990 came from Mt. Etna — a well-known volcano.",
    "🐝",
)


def _spec(voice: str = "", language: str = "", rate: int = 0, pitch: int = 0) -> job_pb2.JobSpec:
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="Volcanoes", language=language),
        voice=job_pb2.VoiceSpec(name=voice, rate=rate, pitch=pitch),
    )
    for narration in NARRATIONS:
        spec.script.add(title="Scene", narration=narration)
    return spec


def _narrate(harness: StageHarness, spec: job_pb2.JobSpec) -> tuple[dict[str, Any], list[tuple[float, str]]]:
    harness.run("script", spec)
    outcome = harness.run("voice", spec)
    document = json.loads(outcome.path(outcome.artifacts["narration"]).read_text(encoding="utf-8"))
    return document, outcome.progress


def _samples(path: Path) -> tuple[array.array[int], int]:
    with wave.open(str(path), "rb") as reader:
        return array.array("h", reader.readframes(reader.getnframes())), reader.getframerate()


def _rms(samples: array.array[int], rate: int, start: float, end: float) -> float:
    window = samples[int(start * rate) : max(int(end * rate), int(start * rate) + 1)]
    return math.sqrt(sum(s * s for s in window) / len(window)) / 32768 if window else 0.0


# -- which voice speaks ------------------------------------------------------------------------------------


def test_the_default_english_voice_is_piper_joe(reelcast_stage: StageHarness) -> None:
    narration, progress = _narrate(reelcast_stage, _spec())
    assert narration["voice"] == "en-us-joe"
    assert any("en-us-joe" in message and "Piper" in message for _, message in progress), progress
    assert narration["sample_rate"] == 22050
    assert narration["scenes"][0]["duration"] > 3


def test_each_scenes_synthesis_is_a_span_of_the_voice_stage(reelcast_stage: StageHarness) -> None:
    reelcast_stage.run("script", _spec())
    with recorded_spans() as spans, tracing.span("stage voice"):
        reelcast_stage.run("voice", _spec())
    (stage,) = [s for s in spans.get_finished_spans() if s.name == "stage voice"]
    synthesis = [s for s in spans.get_finished_spans() if s.name == "speech synthesis"]
    assert len(synthesis) == len(NARRATIONS)
    for speech in synthesis:
        assert speech.parent is not None and speech.parent.span_id == stage.context.span_id
        assert speech.attributes is not None and speech.attributes["reelcast.voice"] == "en-us-joe"


def _harness(tmp_path: Path, host: PluginHost, name: str) -> StageHarness:
    return StageHarness(tmp_path / name, tmp_path / "logs", host)


def test_the_same_script_twice_gives_a_byte_identical_wav(
    tmp_path: Path, reelcast_plugin_host: PluginHost
) -> None:
    first = _harness(tmp_path, reelcast_plugin_host, "first")
    second = _harness(tmp_path, reelcast_plugin_host, "second")
    one, _ = _narrate(first, _spec())
    two, _ = _narrate(second, _spec())
    assert one["voice"] == two["voice"] == "en-us-joe"
    assert first.path(one["audio"]).read_bytes() == second.path(two["audio"]).read_bytes()
    assert one == two


@pytest.mark.parametrize("key", ["en-us", "en-gb"])
def test_espeak_stays_selectable_for_english_by_its_key(reelcast_stage: StageHarness, key: str) -> None:
    narration, progress = _narrate(reelcast_stage, _spec(voice=key))
    assert narration["voice"] == key
    assert any("espeak-ng" in message for _, message in progress), progress


def test_other_languages_speak_with_espeak(reelcast_stage: StageHarness) -> None:
    narration, progress = _narrate(reelcast_stage, _spec(language="de"))
    assert narration["voice"] == "de"
    assert any("espeak-ng" in message for _, message in progress), progress


def test_piper_rate_sets_the_pace(tmp_path: Path, reelcast_plugin_host: PluginHost) -> None:
    slow = _harness(tmp_path, reelcast_plugin_host, "slow")
    fast = _harness(tmp_path, reelcast_plugin_host, "fast")
    at_80, _ = _narrate(slow, _spec(rate=80))
    at_320, _ = _narrate(fast, _spec(rate=320))
    assert at_80["voice"] == at_320["voice"] == "en-us-joe"
    # 80 wpm is length_scale 2.0, 320 wpm is 0.5: up to four times as long (Piper rounds each phoneme up).
    ratio = at_80["scenes"][0]["duration"] / at_320["scenes"][0]["duration"]
    assert 2.5 < ratio < 4.5, ratio


@pytest.mark.parametrize(
    ("language", "key"), [("en", "en-us-joe"), ("en-GB", "en-us-joe"), ("fr", "fr-fr"), ("de", "de")]
)
def test_every_english_brief_defaults_to_piper_and_other_languages_to_espeak(language: str, key: str) -> None:
    from reelcast.plugins.builtin import voices

    voice = voices.find_voice("", language)
    assert voice is not None and voice.key == key
    assert voice.engine == ("piper" if key == "en-us-joe" else "espeak-ng")


def test_a_pitch_for_a_piper_voice_is_reported_as_not_applied(reelcast_stage: StageHarness) -> None:
    _, progress = _narrate(reelcast_stage, _spec(pitch=80))
    assert any("pitch" in message.lower() and "no effect" in message for _, message in progress), progress


def test_the_default_pitch_says_nothing_about_pitch(reelcast_stage: StageHarness) -> None:
    _, progress = _narrate(reelcast_stage, _spec())
    assert not any("pitch" in message.lower() for _, message in progress), progress


# -- word timings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("voice", ["", "en-us"], ids=["piper", "espeak"])
def test_word_timings_are_the_scripts_words_in_order_monotonic_and_inside_each_scene(
    reelcast_stage: StageHarness, voice: str
) -> None:
    narration, _ = _narrate(reelcast_stage, _spec(voice=voice))
    for text, scene in zip(NARRATIONS, narration["scenes"], strict=True):
        words = scene["words"]
        assert [word["text"] for word in words] == text.split()
        scene_end = scene["start"] + scene["duration"]
        for word in words:
            # Absolute in the whole narration: inside this scene, not counted from its start.
            assert scene["start"] - 1e-6 <= word["start"] <= word["end"] <= scene_end + 1e-6, (word, scene)
        for before, after in itertools.pairwise(words):
            assert before["end"] <= after["start"] + 1e-6, (before, after)
    assert all(w["end"] <= narration["duration"] for scene in narration["scenes"] for w in scene["words"])


@pytest.mark.parametrize("voice", ["", "en-us"], ids=["piper", "espeak"])
def test_each_spoken_word_spans_speech_and_sentence_pauses_fall_between_words(
    reelcast_stage: StageHarness, voice: str
) -> None:
    narration, _ = _narrate(reelcast_stage, _spec(voice=voice))
    samples, rate = _samples(reelcast_stage.path(narration["audio"]))
    first = narration["scenes"][0]
    spoken = [w for w in first["words"] if any(c.isalnum() for c in w["text"])]
    for word in spoken:
        assert word["end"] - word["start"] >= 0.02, word
        assert _rms(samples, rate, word["start"], word["end"]) > 0.03, word
    # "crust." ends a sentence: the pause after it is quiet, and "It" starts after it.
    crust = next(w for w in spoken if w["text"] == "crust.")
    it = next(w for w in spoken if w["text"] == "It")
    assert it["start"] - crust["end"] >= 0.1, (crust, it)
    assert _rms(samples, rate, crust["end"] + 0.02, it["start"] - 0.02) < 0.02
    # The whole scene is covered from its first word to its last: no word is lost at the edges.
    assert spoken[0]["start"] <= first["start"] + 0.5
    assert spoken[-1]["end"] >= first["start"] + first["duration"] - 0.5


@pytest.mark.parametrize("voice", ["", "en-us"], ids=["piper", "espeak"])
def test_a_scene_change_is_a_real_pause_and_the_cut_falls_inside_it(
    reelcast_stage: StageHarness, voice: str
) -> None:
    narration, _ = _narrate(reelcast_stage, _spec(voice=voice))
    samples, rate = _samples(reelcast_stage.path(narration["audio"]))
    first, second = narration["scenes"][0], narration["scenes"][1]
    last_word, next_word = first["words"][-1], second["words"][0]
    # About 25 ms used to separate scenes (espeak): now at least the 0.4 s a listener hears as a break.
    assert next_word["start"] - last_word["end"] >= 0.39, (last_word, next_word)
    assert _rms(samples, rate, last_word["end"] + 0.02, next_word["start"] - 0.02) < 0.01
    # The picture cuts inside the pause, neither on the last word nor on the next one.
    cut = second["start"]
    assert last_word["end"] + 0.15 <= cut <= next_word["start"] - 0.15, (last_word, cut, next_word)
    assert cut == pytest.approx(first["start"] + first["duration"], abs=1e-5)


@pytest.mark.parametrize("voice", ["", "en-us"], ids=["piper", "espeak"])
def test_sentences_in_a_scene_are_separated_by_a_breath(reelcast_stage: StageHarness, voice: str) -> None:
    narration, _ = _narrate(reelcast_stage, _spec(voice=voice))
    samples, rate = _samples(reelcast_stage.path(narration["audio"]))
    words = narration["scenes"][0]["words"]
    crust = next(w for w in words if w["text"] == "crust.")
    it = next(w for w in words if w["text"] == "It")
    # espeak pauses about 0.35 s after a full stop; Piper, which speaks sentence by sentence, used to
    # run them together with 0.16 s.
    assert it["start"] - crust["end"] >= 0.3, (crust, it)
    assert _rms(samples, rate, crust["end"] + 0.02, it["start"] - 0.02) < 0.01


# A 30 s video's brief, in plain dictionary words, so that the aligner knows every one (it has no entry for
# "1990" or "Mt."): the writer's hook, lead-ins and close around the key points are dictionary words too.
ALIGNED_BRIEF = job_pb2.Brief(
    topic="How volcanoes form",
    audience="beginners",
    goal="explain an eruption",
    key_points=[
        "Magma forms deep underground, where rock melts in the heat of the mantle.",
        "The molten rock is lighter than the rock around it, so it rises and collects in a chamber.",
        "When pressure in the chamber grows too high, the magma breaks through the crust.",
        "Each eruption leaves a layer of lava and ash, and the layers build the mountain.",
    ],
)


def _forced_alignment(wav: Path, words: list[str]) -> list[tuple[str, float]]:
    """(word, start in seconds) of each word, from pocketsphinx aligning ``words`` with the audio."""
    from pocketsphinx import Decoder

    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(wav), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    decoder = Decoder(samprate=16000, loglevel="ERROR")
    decoder.set_align_text(" ".join(words))
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    fillers = ("<s>", "</s>", "<sil>", "(NULL)", "[NOISE]")
    # pocketsphinx's frames are 10 ms; "word(2)" names a word's second pronunciation.
    return [
        (re.sub(r"\(\d+\)$", "", segment.word), segment.start_frame / 100)
        for segment in decoder.seg()
        if segment.word not in fillers
    ]


@pytest.fixture(scope="module")
def aligned_video(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 30 s brief written and spoken once (script and voice stages, Piper), its word caption cues as the
    render stage draws them, and pocketsphinx's alignment of its WAV."""
    root = tmp_path_factory.mktemp("aligned")
    harness = StageHarness(root / "work", root / "logs", PluginHost.load())
    spec = job_pb2.JobSpec(brief=ALIGNED_BRIEF, plan=job_pb2.Plan(target_duration_seconds=30))
    harness.run("script", spec)
    harness.run("voice", spec)
    script = json.loads(harness.path(harness.artifacts["script"]).read_text(encoding="utf-8"))
    narration = json.loads(harness.path(harness.artifacts["narration"]).read_text(encoding="utf-8"))
    cues = build_word_cues(
        [scene["narration"] for scene in script["scenes"]], narration["scenes"], harness.path
    )
    # Each word as the viewer sees it: lit from its start inside its cue (ass.py's karaoke).
    shown = [(word["text"], word["start"]) for cue in cues for word in cue.words]
    plain = [re.sub(r"[^a-z']", "", text.lower()) for text, _ in shown]
    aligned = _forced_alignment(harness.path(narration["audio"]), plain)
    return {"narration": narration, "shown": shown, "plain": plain, "aligned": aligned}


def test_piper_word_starts_agree_with_an_independent_forced_aligner(aligned_video: dict[str, Any]) -> None:
    narration, plain, aligned = aligned_video["narration"], aligned_video["plain"], aligned_video["aligned"]
    assert narration["voice"] == "en-us-joe"
    assert 27 <= narration["duration"] <= 33, narration["duration"]  # the acceptance's 30 s video
    assert [word for word, _ in aligned] == plain
    errors = [
        abs(start - found) for (_, start), (_, found) in zip(aligned_video["shown"], aligned, strict=True)
    ]
    assert statistics.median(errors) <= 0.1, errors
    assert max(errors) <= 0.25, sorted(zip(errors, plain, strict=True), reverse=True)[:10]


# -- a whole job ---------------------------------------------------------------------------------------------


def test_a_long_piper_scene_reports_each_sentence_so_the_stall_watchdog_lets_it_finish(
    tmp_path: Path,
) -> None:
    # About 80 s of speech in one scene takes Piper several seconds, longer than this stall timeout.
    sentences = [f"Sentence {n} of the long scene is here, and it is said with care." for n in range(1, 21)]
    settings = job_settings(tmp_path / "data", stall_timeout_seconds=3.0)
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(topic="A long scene"),
        script=[job_pb2.Scene(title="Long", narration=" ".join(sentences))],
        render=job_pb2.RenderSpec(width=320, height=180, fps=5),
    )
    run = run_job(settings, with_defaults(spec))
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, (run.job.failure, list(run.job.errors))
    narrating = [
        e.message for e in run.events if e.stage == "voice" and e.message.startswith("Narrating scene 1")
    ]
    assert len(narrating) >= 10, narrating
    narration = json.loads((run.work_dir / "voice.json").read_text(encoding="utf-8"))
    assert narration["voice"] == "en-us-joe" and narration["duration"] > 40


def test_a_job_with_the_default_voice_gives_a_playable_mp4_spoken_by_piper(tmp_path: Path) -> None:
    spec = lighthouse_spec(job_pb2.RenderSpec(width=640, height=360, captions=True))
    run = run_job(job_settings(tmp_path / "data"), with_defaults(spec))
    assert run.job.status == job_pb2.JOB_STATUS_SUCCEEDED, run.job.failure
    video = Path(run.job.output.video_path)
    assert decode_exit_code(video) == 0
    narration = json.loads((run.work_dir / "voice.json").read_text(encoding="utf-8"))
    assert narration["voice"] == "en-us-joe"
    assert abs(probe(video).duration - wav_seconds(run.work_dir / narration["audio"])) <= 0.1
    words = [word["text"] for scene in narration["scenes"] for word in scene["words"]]
    assert words == " ".join(scene.narration for scene in spec.script).split()
