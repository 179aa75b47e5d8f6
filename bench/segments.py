"""Scene-parallel rendering (issue 20): one motion video rendered whole and in 2 and 4 segments on this
machine, each segment's encode and the join timed alone, and the model of rendering across machines built
from those costs (its section of docs/benchmarks.md).

1. The same 60 s 1080p job (the render benchmark's brief, motion and crossfades) is rendered by the render
   stage with ``segments`` 1, 2 and 4. Wall time, and the CPU seconds of its ffmpeg children, for each.
2. The 4-segment run's commands are read back from its logs (one per segment, one for the join) and run
   again one at a time, alone on the machine: what one segment costs a worker that has the machine to
   itself, and what the join costs.
3. SSIM of every segmented output against the single render, over all frames (mean and worst frame).

Why 2 segments on 2 cores cannot reach 2×: x264 already spreads one encode over threads, so the single
render keeps more than one core busy; the CPU seconds ÷ wall time of the single render says how much, and
``2 ÷ that`` bounds the speedup of any split on this machine.

The model: with the timeline cut into S segments of costs t_i (measured alone, as above) spread over M
workers of this machine's size, wall ≈ max over workers of the sum of its segments' t_i (longest first) +
the join + per-segment scheduling (the NATS backend's measured null-job overhead, one work-queue round trip)
+ moving each segment's file to the joining worker at a stated bandwidth.

On NATS: the largest split rendered again with its segments as subtasks on the JetStream work queue
(server/storage/nats/subtasks.py), between this process (the job's worker, which renders its own segments
while they wait) and a real ``reelcast worker`` process, both on this machine, so the same two cores as the
embedded run: what the wall time adds over the embedded split of the same count is the queue's, the object
store's and the forwarding's cost, measured. Per segment it replaces the model's assumed scheduling.

Then the same video in more segments (12; 3 in the smoke run), one encoder per core taken in timeline
order, with the growing preview on: when each preview is published, counted from the stage's start, is the
time to the first playable preview, set against the single render's wall time.

Run alone: ``python -m bench.segments [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from bench.harness import pyplot, section_main
from bench.render import KEY_POINTS, _context, _spec, logged_command, prepare
from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.builtin import render
from reelcast.plugins.builtin.segments import concat_listing
from reelcast.server.config import Settings

# The writer says only what the key points give it: these make about a minute of narration.
LONG_POINTS = [
    *KEY_POINTS,
    "A queen can lay up to two thousand eggs a day at the height of the season.",
    "Drones live only to mate, and the workers push them out of the hive before winter.",
    "Scouts dance on the comb to tell the others where the best flowers are and how far.",
    "In winter the colony clusters into a ball and shivers to keep the queen warm.",
    "Beekeepers take only the surplus, and leave the bees enough honey to last until spring.",
]


@dataclass(frozen=True)
class Scale:
    seconds: float
    width: int
    height: int
    counts: tuple[int, ...]
    # The render with the growing preview: this many segments, encoded one per core in timeline order.
    preview_segments: int


FULL = Scale(60.0, 1920, 1080, (1, 2, 4), 12)
QUICK = Scale(4.0, 320, 180, (1, 2), 3)
PRESET = "veryfast"
# The model's stated assumptions: a 1 Gbit/s link between workers, and one NATS work-queue round trip per
# segment (the job overhead section measures about 193 null jobs/s on NATS: 5.2 ms each).
LINK_BYTES_PER_SECOND = 125_000_000
SCHEDULING_SECONDS = 1 / 193
MODEL_WORKERS = (1, 2, 4, 8, 16)
TARGET_SPEEDUP = 1.6
# Issue 20: the first playable preview within a quarter of the single render's time.
TARGET_FIRST_PREVIEW_SHARE = 0.25


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _render(
    work_dir: Path,
    spec: job_pb2.JobSpec,
    settings: Settings,
    artifacts: dict[str, Any],
    count: int,
    job_id: str,
    previews: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One render; with ``previews`` (a list to fill) the growing preview is on, and each published preview's
    time since the stage started and its seconds of video are appended."""

    async def published(_relative: str, seconds: float, _total: float) -> None:
        assert previews is not None
        previews.append({"at_seconds": time.perf_counter() - started, "video_seconds": seconds})

    # When the stage said it starts encoding and that it has rendered: the serial work around the encode.
    moments: dict[str, float] = {}

    def reported(_fraction: float, message: str) -> None:
        key = "rendered" if message == "Rendered" else ""
        if message.startswith("Rendering video"):
            key = "encode"
        if key and key not in moments:
            moments[key] = time.perf_counter() - started

    async def go() -> dict[str, Any]:
        stage = render.RenderSettings(x264_preset=PRESET, segments=count, previews=previews is not None)
        ctx = _context(work_dir, spec, settings, dict(artifacts), stage, published, reported)
        ctx.job_id = job_id
        return await render.run(ctx)

    cpu, started = _children_cpu(), time.perf_counter()
    produced = asyncio.run(go())
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    video = work_dir / f"{job_id}.mp4"
    (work_dir / render.VIDEO_FILE).replace(video)
    return {
        "segments": count,
        "wall_seconds": wall,
        "fixed_seconds": moments.get("encode", 0.0) + wall - moments.get("rendered", wall),
        "cpu_seconds": cpu,
        "video": str(video),
        "log": produced["ffmpeg_log"],
    }


def _render_on_nats(
    base: Path,
    work_dir: Path,
    spec: job_pb2.JobSpec,
    settings: Settings,
    artifacts: dict[str, Any],
    count: int,
) -> dict[str, Any]:
    """The ``count``-segment render with its segments as subtasks on NATS (this process and one worker
    process), and who rendered each segment."""
    from reelcast.server.storage.nats.job_store import NatsJobStore
    from reelcast.server.storage.nats.layout import NatsConnection, read_json_entry
    from reelcast.server.storage.nats.subtasks import NatsSubtasks, subtasks_key
    from reelcast.server.storage.nats.work import NatsJobFiles, NatsWorkQueue
    from tests.nats.natsproc import NatsServer
    from tests.nats.processes import worker

    node = NatsServer(base / "nats")
    node.start()
    remote = worker(base, "remote-worker", node.url, {})
    job_id = f"bench-segments-nats-{count}"

    async def go() -> dict[str, Any]:
        connection = NatsConnection([node.url], 1, 30.0)
        await connection.open(timeout=60)
        queue = NatsWorkQueue(connection)
        files = NatsJobFiles(connection)
        await queue.recover(NatsJobStore(connection))
        pool = NatsSubtasks(connection, queue, files, base / "subtasks")
        session = pool.session(job_pb2.Job(id=job_id, spec=spec), work_dir)
        stage = render.RenderSettings(x264_preset=PRESET, segments=count, previews=False)
        ctx = _context(work_dir, spec, settings, dict(artifacts), stage)
        ctx.job_id = job_id
        ctx._subtasks = session.run
        started = time.perf_counter()
        try:
            await render.run(ctx)
        finally:
            await session.close()
        wall = time.perf_counter() - started
        document, _ = await read_json_entry(connection.layout.state, subtasks_key(job_id))
        await connection.close()
        results = (document or {}).get("results", {})
        remote = [name for name, result in results.items() if not result.get("here")]
        # What a segment on another worker costs beyond its encode: its inputs shared and brought there,
        # its output sent back and brought here, and its claim when a worker is free (the quickest claim:
        # later ones also wait for a worker to finish its previous segment).
        moved = [
            session.timings[name]["shared_seconds"]
            + results[name]["staged_seconds"]
            + results[name]["kept_seconds"]
            + session.timings[name]["brought_seconds"]
            for name in remote
        ]
        claims = [session.timings[name]["claimed_after_seconds"] for name in results]
        return {
            "wall_seconds": wall,
            "here": len(results) - len(remote),
            # A worker's first segment of a job also brings the files every segment shares (the caption
            # fonts, about 11 MB): once per worker and job; the cheapest move is what each segment adds.
            "files_seconds_per_remote_segment": min(moved) if moved else 0.0,
            "files_seconds_first_on_a_worker": max(moved) if moved else 0.0,
            "quickest_claim_seconds": min(claims) if claims else 0.0,
        }

    try:
        remote.start()
        outcome = asyncio.run(go())
    finally:
        remote.stop()
        node.stop()
    video = work_dir / f"{job_id}.mp4"
    (work_dir / render.VIDEO_FILE).replace(video)
    return {"segments": count, **outcome, "remote": count - outcome["here"], "video": str(video)}


def _run_alone(arguments: list[str], output: Path, cwd: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one logged ffmpeg command, run again to ``output`` (in ``cwd``: a segment's
    command names the work dir's files relative to it)."""
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", *arguments[:-1], str(output)],
        cwd=cwd,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, _children_cpu() - cpu


def _ssim(first: str, second: str) -> dict[str, float]:
    """Mean and worst per-frame SSIM (all planes) of two videos of the same frames."""
    completed = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-i",
            first,
            "-i",
            second,
            "-lavfi",
            "[0:v][1:v]ssim=stats_file=-",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    values = [float(match) for match in re.findall(r"All:([0-9.]+)", completed.stdout)]
    if not values:
        raise RuntimeError("ffmpeg's ssim filter printed no frames")
    return {"mean": sum(values) / len(values), "worst": min(values), "frames": float(len(values))}


def _frames(video: str) -> int:
    completed = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-i", video, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.findall(r"frame=\s*(\d+)", completed.stderr)
    return int(found[-1]) if found else 0


def model(
    single_seconds: float,
    fixed_seconds: float,
    segment_seconds: list[float],
    segment_bytes: list[int],
    join_seconds: float,
    scheduling_seconds: float = SCHEDULING_SECONDS,
    first_on_a_worker_seconds: float = 0.0,
) -> list[dict[str, float]]:
    """Predicted wall time on M workers: the stage's work around the encode (``fixed_seconds``), the
    picture's encode (the segments' costs alone, summed) cut in M equal segments, one per worker, plus
    scheduling (``scheduling_seconds`` per segment: measured on NATS, and once the extra of a worker's first
    segment, which brings the shared files), moving the files to the joining worker, and the join; the
    speedup is against the measured single render."""
    rows = []
    whole = sum(segment_seconds)
    for workers in MODEL_WORKERS:
        moved = sum(segment_bytes) * (workers - 1) / workers / LINK_BYTES_PER_SECOND
        wall = fixed_seconds + whole / workers + scheduling_seconds * workers + moved + join_seconds
        if workers > 1:
            wall += first_on_a_worker_seconds
        rows.append({"workers": float(workers), "wall_seconds": wall, "speedup": single_seconds / wall})
    return rows


def run(quick: bool = False) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    width, height = scale.width, scale.height
    with tempfile.TemporaryDirectory(prefix="reelcast-bench-segments-") as temporary:
        base = Path(temporary)
        settings = Settings(data_dir=base / "data")
        work_dir = base / "job"
        work_dir.mkdir()
        spec = _spec(scale.seconds, width, height)
        if not quick:
            spec.brief.key_points[:] = LONG_POINTS
        artifacts = asyncio.run(prepare(work_dir, spec, settings))
        runs = [
            _render(work_dir, spec, settings, artifacts, count, f"bench-segments-{count}")
            for count in scale.counts
        ]
        spread = _render_on_nats(base, work_dir, spec, settings, artifacts, scale.counts[-1])
        spread["frames"] = _frames(spread["video"])
        spread["ssim"] = _ssim(runs[0]["video"], spread.pop("video"))
        previews: list[dict[str, float]] = []
        previewed = _render(
            work_dir, spec, settings, artifacts, scale.preview_segments, "bench-segments-preview", previews
        )
        previewed["frames"] = _frames(previewed["video"])
        narration = json.loads((work_dir / "voice.json").read_text())["duration"]
        single = runs[0]
        single_frames = _frames(single["video"])
        for result in runs:
            result["frames"] = _frames(result["video"])
            if result["segments"] > 1:
                result["ssim"] = _ssim(single["video"], result["video"])
        single_encode, _ = _run_alone(logged_command(Path(single["log"])), base / "single-alone.mp4")
        most = runs[-1]
        logs = Path(most["log"]).parent
        segment_costs, segment_bytes = [], []
        for number in range(most["segments"]):
            arguments = logged_command(logs / f"bench-segments-{most['segments']}.segment-{number}.log")
            output = base / f"alone-{number:03d}.mp4"
            wall, cpu = _run_alone(arguments, output, work_dir)
            segment_costs.append({"segment": number, "wall_seconds": wall, "cpu_seconds": cpu})
            segment_bytes.append(output.stat().st_size)
        join_arguments = logged_command(Path(most["log"]))
        listing = work_dir / render.SEGMENTS_CONCAT_FILE
        alone = [base / f"alone-{n:03d}.mp4" for n in range(most["segments"])]
        listing.write_text(concat_listing(alone), encoding="utf-8")
        join_wall, join_cpu = _run_alone(join_arguments, base / "joined.mp4")
    for result in [*runs, previewed]:
        result.pop("video")
        result.pop("log")
    spread["overhead_per_segment_seconds"] = (
        spread["files_seconds_per_remote_segment"] + spread["quickest_claim_seconds"]
    )
    return {
        "nats_render": spread,
        "preview_render": {**previewed, "previews": previews},
        "seconds": scale.seconds,
        "size": f"{width}x{height}",
        "preset": PRESET,
        "narration_seconds": narration,
        "single_frames": single_frames,
        "renders": runs,
        "segment_costs": segment_costs,
        "segment_bytes": segment_bytes,
        "join": {"wall_seconds": join_wall, "cpu_seconds": join_cpu},
        "single_encode_alone_seconds": single_encode,
        "model": model(
            single["wall_seconds"],
            single["fixed_seconds"],
            [c["wall_seconds"] for c in segment_costs],
            segment_bytes,
            join_wall,
            spread["overhead_per_segment_seconds"],
            spread["files_seconds_first_on_a_worker"] - spread["files_seconds_per_remote_segment"],
        ),
    }


def speedup(results: dict[str, Any], count: int) -> float:
    walls = {r["segments"]: r["wall_seconds"] for r in results["renders"]}
    return float(walls[1] / walls[count])


def summary(results: dict[str, Any]) -> dict[str, float]:
    single = results["renders"][0]
    out = {"single_render_cores_busy": single["cpu_seconds"] / single["wall_seconds"]}
    for result in results["renders"][1:]:
        out[f"speedup_{result['segments']}_segments"] = speedup(results, result["segments"])
        out[f"worst_ssim_{result['segments']}_segments"] = result["ssim"]["worst"]
    spread = results.get("nats_render")
    if spread:
        out["nats_overhead_per_segment_seconds"] = spread["overhead_per_segment_seconds"]
        out["nats_worst_ssim"] = spread["ssim"]["worst"]
    previews = results.get("preview_render", {}).get("previews", [])
    if previews:
        out["first_preview_seconds"] = previews[0]["at_seconds"]
        out["first_preview_share"] = previews[0]["at_seconds"] / single["wall_seconds"]
    return out


def section(results: dict[str, Any], plot_path: str) -> str:
    single = results["renders"][0]
    busy = single["cpu_seconds"] / single["wall_seconds"]
    lines = [
        "## Scene-parallel render (issue 20)",
        "",
        f"One {results['narration_seconds']:.1f} s {results['size']} motion video (the render section's "
        f"brief, with more key points: a push or pan per scene, crossfades, sentence captions; preset "
        f"{results['preset']}, {results['single_frames']} frames) rendered by the "
        "render stage whole and in segments on this machine. CPU is the ffmpeg children's user + system "
        "seconds; SSIM is against the single render over every frame.",
        "",
        "| segments | wall s | CPU s | cores busy | speedup vs 1 | frames | SSIM mean | SSIM worst frame |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results["renders"]:
        ssim = result.get("ssim")
        lines.append(
            f"| {result['segments']} | {result['wall_seconds']:.1f} | {result['cpu_seconds']:.1f} "
            f"| {result['cpu_seconds'] / result['wall_seconds']:.2f} "
            f"| {speedup(results, result['segments']):.2f} "
            f"| {result['frames']} | {ssim['mean']:.5f} | {ssim['worst']:.5f} |"
            if ssim
            else f"| 1 | {result['wall_seconds']:.1f} | {result['cpu_seconds']:.1f} | {busy:.2f} | 1.00 "
            f"| {result['frames']} | (reference) | |"
        )
    costs = results["segment_costs"]
    fixed = single["fixed_seconds"]
    lines += [
        "",
        f"The single render keeps {busy:.2f} cores busy on average (x264 runs its own threads, and the "
        f"stage's work around the encode runs on one), so no split on this machine can beat {2 / busy:.2f}×. "
        f"Beyond that the {TARGET_SPEEDUP}× target needs a second machine's cores: on NATS the segments are "
        "subtasks any worker renders (below).",
        "",
        f"Each of the {len(costs)} segments, and the join, run again alone (wall s / CPU s): "
        + ", ".join(f"{c['wall_seconds']:.1f} / {c['cpu_seconds']:.1f}" for c in costs)
        + f"; join {results['join']['wall_seconds']:.2f} / {results['join']['cpu_seconds']:.2f}, "
        f"segment files {sum(results['segment_bytes']) / 1e6:.1f} MB in all.",
        "",
        *_nats_lines(results),
        "### Scaling past this machine: the model",
        "",
        f"From those costs: the stage's work around the encode ({fixed:.1f} s of the single render: from the "
        "stage's start to its encode's first progress, and from the encode's end to the stage's; its ffmpeg "
        f"command run alone took {results['single_encode_alone_seconds']:.1f} s), then the "
        "picture's encode spread in equal segments over M workers of this machine's "
        f"size, + {_scheduling(results) * 1000:.0f} ms per segment for the queue and the object store "
        f"({_scheduling_source(results)}; and once the extra of a worker's first segment) "
        "+ moving the segment files to the joining worker at "
        f"{LINK_BYTES_PER_SECOND * 8 / 1e9:.0f} Gbit/s + the join. It assumes the timeline has a scene cut "
        "near every split (cuts go only where no transition runs) and that each worker's segment costs what "
        "it costs alone here.",
        "",
        "| workers | predicted wall s | predicted speedup |",
        "| ---: | ---: | ---: |",
    ]
    for row in results["model"]:
        lines.append(f"| {row['workers']:.0f} | {row['wall_seconds']:.1f} | {row['speedup']:.2f} |")
    lines += _preview_lines(results)
    lines += ["", f"![Scene-parallel render]({plot_path})", ""]
    return "\n".join(lines)


def _scheduling(results: dict[str, Any]) -> float:
    spread = results.get("nats_render")
    return float(spread["overhead_per_segment_seconds"]) if spread else SCHEDULING_SECONDS


def _scheduling_source(results: dict[str, Any]) -> str:
    if results.get("nats_render"):
        return "measured on NATS: moving a segment's files and claiming it, above"
    return "assumed: one NATS work-queue round trip, from the job overhead section"


def _nats_lines(results: dict[str, Any]) -> list[str]:
    spread = results.get("nats_render")
    if not spread:
        return []
    embedded = next(r for r in results["renders"] if r["segments"] == spread["segments"])
    return [
        "### The same split as subtasks on NATS",
        "",
        f"The {spread['segments']}-segment render again, its segments as subtasks on the NATS work queue "
        "(server/storage/nats/subtasks.py): this process as the job's worker (rendering its own segments "
        "while they wait, in the work dir) and one `reelcast worker` process (its inputs from the object "
        "store, its segment back through it), both on this machine, so the same cores as the embedded run.",
        "",
        "| render | wall s | segments by the job's worker | by the other | frames | SSIM worst frame |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| embedded, {embedded['segments']} segments | {embedded['wall_seconds']:.1f} "
        f"| {embedded['segments']} | 0 | {embedded['frames']} | {embedded['ssim']['worst']:.5f} |",
        f"| NATS, {spread['segments']} segments | {spread['wall_seconds']:.1f} | {spread['here']} "
        f"| {spread['remote']} | {spread['frames']} | {spread['ssim']['worst']:.5f} |",
        "",
        f"What a segment on another worker costs beyond its encode, measured in this run: "
        f"{spread['files_seconds_per_remote_segment'] * 1000:.0f} ms moving its files (its inputs shared "
        "into the object store and brought to the worker, its output sent back and brought to the job's "
        f"worker) + {spread['quickest_claim_seconds'] * 1000:.0f} ms from its publish to its start on a "
        f"free worker = {spread['overhead_per_segment_seconds'] * 1000:.0f} ms per segment; a worker's "
        f"first segment of the job took {spread['files_seconds_first_on_a_worker'] * 1000:.0f} ms to move, "
        "with the files all segments share (the caption fonts, once per worker and job). The NATS "
        f"split took {spread['wall_seconds'] / embedded['wall_seconds']:.2f} × the embedded split's wall "
        "time: on one machine both runs share the same two cores, so the difference is mostly the host's "
        "speed between runs.",
        "",
    ]


def _preview_lines(results: dict[str, Any]) -> list[str]:
    previewed = results.get("preview_render")
    if not previewed:
        return []
    single = results["renders"][0]["wall_seconds"]
    lines = [
        "",
        "### Time to the first playable preview",
        "",
        f"The same video rendered in {previewed['segments']} segments, one encoder per core taken in "
        "timeline order, with the growing preview on (plugins/builtin/preview.py): when each preview was "
        "published, counted from the render stage's start, against the single render's "
        f"{single:.1f} s (target: the first within {TARGET_FIRST_PREVIEW_SHARE:.0%}). This render took "
        f"{previewed['wall_seconds']:.1f} s in all ({previewed['frames']} frames).",
        "",
        "| preview | published at s | share of the single render | video s it holds |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for number, preview in enumerate(previewed["previews"], start=1):
        lines.append(
            f"| {number} | {preview['at_seconds']:.1f} | {preview['at_seconds'] / single:.0%} "
            f"| {preview['video_seconds']:.1f} |"
        )
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    from bench.harness import save_figure

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    measured = [(r["segments"], speedup(results, r["segments"])) for r in results["renders"]]
    axes.plot(
        [m[0] for m in measured],
        [m[1] for m in measured],
        marker="o",
        color="#d62728",
        label="measured, segments on this 2-core machine",
    )
    axes.plot(
        [r["workers"] for r in results["model"]],
        [r["speedup"] for r in results["model"]],
        marker="s",
        linestyle="--",
        color="#1f77b4",
        label="model, one segment per 2-core worker",
    )
    axes.axhline(
        TARGET_SPEEDUP, linestyle=":", color="#2ca02c", label=f"target {TARGET_SPEEDUP}× with 2 workers"
    )
    axes.set_xscale("log", base=2)
    axes.set_xlabel("segments (measured) or workers (model)")
    axes.set_ylabel("speedup vs the single render")
    axes.set_title("Scene-parallel render")
    axes.legend(fontsize=8)
    save_figure(figure, path)


def main() -> None:
    section_main(__doc__ or "", run, summary)


if __name__ == "__main__":
    main()
