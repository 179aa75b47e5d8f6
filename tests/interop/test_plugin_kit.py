"""The plugin authoring kit (reelcast.plugins.testing) as an author uses it: ``reelcast_stage`` runs one stage
with the context the runner would build, ``reelcast_server`` runs whole jobs on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl
from reelcast.plugins.testing import ReelcastTestServer, StageHarness
from tests.stages import PipelinePlugin, writing_stage

SMALL_SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(topic="Tides"),
    plan=job_pb2.Plan(target_duration_seconds=4),
    render=job_pb2.RenderSpec(width=320, height=180),
)


class Recorder:
    """A stage that keeps the context it ran with."""

    def __init__(self) -> None:
        self.context: StageContext | None = None

    def __call__(self, ctx: StageContext) -> dict[str, Any]:
        self.context = ctx
        ctx.report(0.5, "half")  # from a worker thread: the stage is a plain function
        ctx.path("seen.txt").write_text(",".join(sorted(ctx.artifacts)))
        ctx.report(1.0, "done")
        return {"seen": "seen.txt"}


def test_reelcast_stage_runs_one_stage_with_the_context_of_a_real_job(reelcast_stage: StageHarness) -> None:
    recorder = Recorder()
    stage = Stage(name="recorder", title="Recorder", weight=1, order=1, run=recorder)
    reelcast_stage.path("upstream.txt").write_text("from an earlier stage")

    outcome = reelcast_stage.run(stage, SMALL_SPEC, {"upstream": "upstream.txt"})

    context = recorder.context
    assert context is not None
    assert context.work_dir == reelcast_stage.work_dir == outcome.work_dir
    assert context.stage_name == "recorder"
    # The spec as a job's stage sees it: the server's defaults are filled in.
    assert (context.spec.brief.language, context.spec.render.fps) == ("en", 30)
    assert context.log_dir.is_relative_to(reelcast_stage.work_dir.parent)
    assert outcome.progress == [(0.5, "half"), (1.0, "done")]
    assert outcome.artifacts == {"seen": "seen.txt"}
    assert outcome.path("seen.txt").read_text() == "upstream"
    assert reelcast_stage.artifacts == {"upstream": "upstream.txt", "seen": "seen.txt"}


def test_reelcast_stage_chains_installed_stages_by_name(reelcast_stage: StageHarness) -> None:
    script = reelcast_stage.run("script", SMALL_SPEC)
    voice = reelcast_stage.run("voice", SMALL_SPEC)

    assert reelcast_stage.path(script.artifacts["script"]).is_file()
    assert reelcast_stage.path(voice.artifacts["narration"]).is_file()
    assert voice.fractions[-1] == 1.0
    with pytest.raises(LookupError, match="no stage named 'nonexistent'"):
        reelcast_stage.resolve("nonexistent")


async def test_reelcast_stage_runs_coroutine_stages_in_the_tests_own_loop(
    reelcast_stage: StageHarness,
) -> None:
    stage = Stage(name="notes", title="Notes", weight=1, order=1, run=writing_stage("notes", steps=2))
    outcome = await reelcast_stage.run_async(stage)
    assert outcome.progress == [(0.5, "notes 1/2"), (1.0, "notes 2/2")]
    assert outcome.path("notes.txt").read_text() == "notes 1\nnotes 2\n"


def test_reelcast_stage_can_start_a_stage_cancelled(reelcast_stage: StageHarness) -> None:
    stage = Stage(name="notes", title="Notes", weight=1, order=1, run=writing_stage("notes"))
    with pytest.raises(ReelcastError) as cancelled:
        reelcast_stage.run(stage, cancelled=True)
    assert cancelled.value.code == "E311-CANCELLED"


def test_reelcast_server_runs_a_whole_job_with_only_the_authors_plugin(
    reelcast_server: Callable[..., ReelcastTestServer],
) -> None:
    server = reelcast_server(PipelinePlugin(), "pipeline", builtins=False)

    run = server.run_job()

    assert run.succeeded
    assert run.stage_order() == ["script", "voice", "visuals", "render", "postprocess"]
    starts = [run.stage_events(name)[0].job_percent for name in run.stage_order()]
    assert starts == [10.0, 30.0, 50.0, 70.0, 90.0]
    assert run.terminal.kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert [e.sequence for e in run.events] == list(range(1, len(run.events) + 1))
    assert Path(run.job.output.video_path).read_text().startswith("postprocess 1")


class Watermark:
    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        register(Stage(name="watermark", title="Watermark", weight=10, order=450, run=writing_stage("mark")))


def test_reelcast_server_lists_the_builtins_and_the_authors_stage_in_order(
    reelcast_server: Callable[..., ReelcastTestServer],
) -> None:
    with_builtins = reelcast_server(Watermark(), "watermark")
    without = reelcast_server(Watermark(), "watermark", builtins=False)

    listed = [(stage.name, stage.plugin) for stage in with_builtins.stages()]
    assert listed == [
        ("script", "script"),
        ("voice", "voice"),
        ("visuals", "visuals"),
        ("render", "render"),
        ("watermark", "watermark"),
        ("postprocess", "postprocess"),
    ]
    assert [stage.name for stage in without.stages()] == ["watermark"]
    assert with_builtins.target != without.target


async def test_reelcast_stage_cancels_a_running_stage_and_its_subprocess(
    reelcast_stage: StageHarness,
) -> None:
    started = asyncio.Event()

    async def sleeper(ctx: StageContext) -> None:
        started.set()
        result = await ctx.run_subprocess(["sleep", "60"])
        assert result.cancelled
        ctx.raise_if_cancelled()

    running = asyncio.create_task(
        reelcast_stage.run_async(Stage(name="sleep", title="Sleep", weight=1, order=1, run=sleeper))
    )
    await asyncio.wait_for(started.wait(), 10)
    assert reelcast_stage.cancel_event is not None
    reelcast_stage.cancel_event.set()
    with pytest.raises(ReelcastError) as cancelled:
        await asyncio.wait_for(running, 10)
    assert cancelled.value.code == "E311-CANCELLED"
