"""The mix: the narration over its music, ducked, at broadcast loudness. The render stage calls
:func:`prepare_audio` and encodes what it returns.

Short ffmpeg runs, audio only, each reporting its progress:

1. **Measure** the narration's and the music's integrated loudness (``ebur128``; the music as long as the
   video, looped).
2. **Set levels.** The voice goes to ``TARGET_LUFS`` through a gentle compressor, the music to
   ``MUSIC_UNDER_VOICE_LU`` under it, fading in at the start and out under the ending. The music then
   **ducks under the narration**: ``sidechaincompress`` keyed by the voice pulls it down about 10 dB
   while a word is spoken and lets it back up in the pauses.
3. **Limit.** Piper normalises each sentence to full scale, so the voice's peaks stand about 20 dB over its
   loudness and a plain gain to -14 LUFS would clip them. A limiter (run at 192 kHz, so that it also
   catches the peaks between samples) holds them at ``LIMIT_DBTP``; the gain before it is raised by the
   loudness it took, measured, until what is left to gain is under ``MAX_GAIN_AFTER_LIMITER_DB``.
4. **Normalise** with two-pass ``loudnorm``: a measuring pass, then the measured values with
   ``linear=true``: one small gain to ``TARGET_LUFS``, true peak at most ``TRUE_PEAK_DBTP`` (one pass of
   ``loudnorm`` alone reached only -18 LUFS on this material, and a large gain would have made it fall
   back to its dynamic mode). The AAC encoder adds a little overshoot, hence the margin under the -1 dBTP
   that platforms ask for.

Output: ``mix/mix.flac``, 48 kHz, stereo under music (the bed is stereo; a mono track is spread to both
sides) and mono without; the ducked music alone as it entered the mix (``mix/music.flac``, before the
master gain) and the measurements (``mix/mix.json``) sit beside it for whoever wants to check the levels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelcast.jobs import errors
from reelcast.plugins import ReelcastError, StageContext
from reelcast.plugins.artifacts import NarrationArtifact
from reelcast.plugins.builtin import music
from reelcast.plugins.builtin.ffmpeg import ProgressReader, run_ffmpeg

SAMPLE_RATE = 48000
TARGET_LUFS = -14.0
TRUE_PEAK_DBTP = -1.5
LIMIT_DBTP = -2.5
# How far under the voice the music sits before ducking (in the pauses), in loudness units.
MUSIC_UNDER_VOICE_LU = 18.0
MUSIC_FADE_IN_SECONDS = 1.0
MUSIC_FADE_OUT_SECONDS = 2.0
# loudnorm's gain after the limiter stays under the room between LIMIT_DBTP and TRUE_PEAK_DBTP (1 dB), so
# that it stays linear; the gain before the limiter is corrected this many times at most to get there.
MAX_GAIN_AFTER_LIMITER_DB = 0.6
MAX_LIMITER_ROUNDS = 3
# A silent or nearly silent input measures -70 LUFS; no gain may lift noise by more than this.
MAX_GAIN_DB = 30.0
MIX_FILE = "mix/mix.flac"
MUSIC_STEM_FILE = "mix/music.flac"
MIX_REPORT_FILE = "mix/mix.json"
# Ducking: the voice (at TARGET_LUFS) over the threshold pulls the music down by ratio; attack and release
# in milliseconds, slow enough not to pump on every syllable, quick enough to rise in a scene change.
_DUCKING = "sidechaincompress=threshold=0.05:ratio=4:attack=20:release=500:knee=4"
_INTEGRATED = re.compile(r"^\s*I:\s+(-?[\d.]+) LUFS", re.MULTILINE)


async def prepare_audio(ctx: StageContext, narration: NarrationArtifact, ffmpeg: str) -> Path:
    """The job's final audio: ``narration`` with its music (music.py), ducked and normalised; E304 when
    ffmpeg fails, E451 when the owner's track is gone."""
    duration = float(narration["duration"])
    voice = ctx.path(narration["audio"])
    ctx.report(0.0, "Mixing the audio")
    track = music.music_source(ctx)
    ctx.path(MIX_FILE).parent.mkdir(exist_ok=True)
    run = _Runner(ctx, ffmpeg, duration)
    voice_gain = _gain(TARGET_LUFS - await _loudness(run, "measuring the voice", ["-i", str(voice)]))
    inputs = ["-i", str(voice)]
    report: dict[str, Any] = {"music": str(track.name) if track else None, "voice_gain_db": voice_gain}
    if track is None:
        graph = f"[0:a]{_voice_chain(voice_gain)}[premaster]"
    else:
        looped = ["-stream_loop", "-1", "-i", str(track)]
        music_lufs = await _loudness(run, "measuring the music", [*looped, "-t", f"{duration:.3f}"])
        music_gain = _gain(TARGET_LUFS - MUSIC_UNDER_VOICE_LU - music_lufs)
        report["music_gain_db"] = music_gain
        inputs += looped
        graph = _music_graph(duration, voice_gain, music_gain)
    # The level the master starts from: the voice's compressor and the music moved it. The limiter then
    # takes some loudness off with the peaks; loudnorm's gain after it may only be small, or it would push
    # the peaks back over the ceiling (and loudnorm would give up its linear gain for dynamic mode), so the
    # gain before the limiter grows by what it took, measured, until what is left is small.
    stemless = _without_stem(graph)
    premaster_lufs = await _loudness(run, "measuring the mix", inputs, f"{stemless};[premaster]ebur128[out]")
    gain = _gain(TARGET_LUFS - premaster_lufs)
    for _ in range(MAX_LIMITER_ROUNDS):
        limited = await _loudness(
            run, "limiting the peaks", inputs, f"{stemless};[premaster]{_master(gain)},ebur128[out]"
        )
        if TARGET_LUFS - limited <= MAX_GAIN_AFTER_LIMITER_DB:
            break
        gain = _gain(gain + TARGET_LUFS - limited)
    master = _master(gain)
    report |= {"premaster_lufs": premaster_lufs, "master_gain_db": gain}
    measured = await _measure_master(run, inputs, graph, master, stem=track is not None)
    loudnorm = (
        f"loudnorm=I={TARGET_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={min(max(7.0, measured['input_lra'] + 1), 50):.1f}"
        f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=json"
    )
    channels = "stereo" if track is not None else "mono"
    applied = await run.graph(
        "normalising to -14 LUFS",
        inputs,
        f"{stemless};[premaster]{master},{loudnorm},aresample={SAMPLE_RATE},"
        f"aformat=channel_layouts={channels}[out]",
        ["-map", "[out]", "-t", f"{duration:.6f}", "-c:a", "flac", str(ctx.path(MIX_FILE))],
    )
    report |= {"measured": measured, "applied": _loudnorm_json(applied)}
    ctx.path(MIX_REPORT_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return ctx.path(MIX_FILE)


def _music_graph(duration: float, voice_gain: float, music_gain: float) -> str:
    """The voice and the ducked music summed into ``[premaster]``, the ducked music alone into ``[stem]``."""
    fade_out = max(duration - MUSIC_FADE_OUT_SECONDS, 0.0)
    return ";".join(
        [
            f"[0:a]{_voice_chain(voice_gain)},asplit=2[voice][key]",
            f"[1:a]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"atrim=0:{duration:.6f},asetpts=N/SR/TB,volume={music_gain:.2f}dB,"
            f"afade=t=in:d={MUSIC_FADE_IN_SECONDS},afade=t=out:st={fade_out:.3f}:d={MUSIC_FADE_OUT_SECONDS}[bed]",
            f"[bed][key]{_DUCKING},asplit=2[ducked][stem]",
            "[voice]pan=stereo|c0=c0|c1=c0[voice2]",
            "[voice2][ducked]amix=inputs=2:normalize=0:duration=first[premaster]",
        ]
    )


def _voice_chain(gain: float) -> str:
    """The narration at ``TARGET_LUFS``, its peaks evened out by a gentle compressor, so that the limiter
    after it has little left to do (a limiter taking 8 dB off Piper's sentence peaks splattered clicks
    over the whole spectrum)."""
    return (
        f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=mono,volume={gain:.2f}dB,"
        "acompressor=threshold=0.25:ratio=4:attack=5:release=100:knee=4"
    )


def _master(gain: float) -> str:
    """The master's gain and its limiter, run at 192 kHz so that it also catches the peaks between samples."""
    ceiling = 10 ** (LIMIT_DBTP / 20)
    return (
        f"volume={gain:.2f}dB,aresample=192000,alimiter=limit={ceiling:.4f}:level=false:attack=5:release=100"
    )


def _without_stem(graph: str) -> str:
    """The graph with its ``[stem]`` output, if any, consumed (ffmpeg refuses an unconnected output)."""
    return f"{graph};[stem]anullsink" if "[stem]" in graph else graph


def _gain(decibels: float) -> float:
    return round(min(decibels, MAX_GAIN_DB), 2)


async def _measure_master(
    run: _Runner, inputs: list[str], graph: str, master: str, *, stem: bool
) -> dict[str, float]:
    """loudnorm's first pass over the limited mix (and the music stem written on the way)."""
    outputs = ["-map", "[measure]", "-f", "null", "-"]
    if stem:
        outputs += ["-map", "[stem]", "-c:a", "flac", str(run.ctx.path(MUSIC_STEM_FILE))]
    else:
        graph = _without_stem(graph)
    stderr = await run.graph(
        "limiting and measuring",
        inputs,
        f"{graph};[premaster]{master},loudnorm=print_format=json[measure]",
        outputs,
    )
    measured = _loudnorm_json(stderr)
    return {
        key: float(measured[key])
        for key in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
    }


async def _loudness(run: _Runner, step: str, inputs: list[str], graph: str = "[0:a]ebur128[out]") -> float:
    """The integrated loudness (LUFS) of the first input, or of ``graph``'s ``[out]``, from ``ebur128``'s
    summary (several times quicker than a measuring pass of ``loudnorm``)."""
    stderr = await run.graph(step, inputs, graph, ["-map", "[out]", "-f", "null", "-"])
    found = _INTEGRATED.findall(stderr)
    if not found:
        raise ReelcastError(errors.FFMPEG_RUNTIME, "FFmpeg measured no loudness while mixing the audio.")
    return float(found[-1])


@dataclass
class _Runner:
    """Runs the mix's ffmpeg passes under the job's cancellation, each reporting how far it got (a long
    video's loudnorm pass takes a while, and the stall watchdog must hear the stage)."""

    ctx: StageContext
    ffmpeg: str
    duration: float

    async def graph(self, step: str, inputs: list[str], graph: str, outputs: list[str]) -> str:
        """ffmpeg's stderr for one filter graph; E311 on cancel, E304 with the stderr's tail on failure."""

        def on_fraction(_fraction: float, seconds: float) -> None:
            self.ctx.report(0.0, f"Mixing the audio, {step}: {seconds:.0f} s of {self.duration:.0f} s")

        progress = ProgressReader(self.duration, on_fraction)
        argv = [self.ffmpeg, "-hide_banner", "-nostats", "-progress", "pipe:1", "-stats_period", "0.5", "-y"]
        argv += [*inputs, "-filter_complex", graph, *outputs]
        lines: list[str] = []
        result = await run_ffmpeg(self.ctx, argv, on_stdout_line=progress.line, on_stderr_line=lines.append)
        if result.cancelled:
            raise ReelcastError(errors.CANCELLED)
        stderr = "\n".join(lines)
        if result.returncode != 0:
            raise ReelcastError(
                errors.FFMPEG_RUNTIME,
                f"FFmpeg exited with code {result.returncode} while mixing the audio ({step}).",
                stderr_snippet=stderr[-16384:],
            )
        return stderr


def _loudnorm_json(stderr: str) -> dict[str, Any]:
    """The JSON block ``loudnorm`` prints at the end of a run with ``print_format=json``."""
    start = stderr.rfind("{")
    end = stderr.rfind("}")
    if start < 0 or end < start:
        raise ReelcastError(errors.FFMPEG_RUNTIME, "FFmpeg printed no loudness measurement while mixing.")
    document: dict[str, Any] = json.loads(stderr[start : end + 1])
    return document
