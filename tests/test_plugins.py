"""The plugin host: entry-point discovery, the block list, replacement by name, and each hook."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grpc import aio

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.plugins import Stage, StageContext, hookimpl
from reelcast.plugins.host import PluginConflictError, PluginHost
from tests.processes import ALL_BUILTINS, ServerProcess
from tests.stages import PipelinePlugin


@pytest.fixture
def serve_with_plugin(
    installed_sample_plugin: Path, tmp_path: Path
) -> Iterator[Callable[[str], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(disabled: str) -> ServerProcess:
        process = ServerProcess(
            tmp_path / f"data{len(started)}",
            env={"PYTHONPATH": str(installed_sample_plugin), "REELCAST_DISABLED_PLUGINS": disabled},
        )
        started.append(process)
        process.start()
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


async def _stages(target: str) -> list[job_pb2.Stage]:
    async with aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        return list((await stub.ListStages(job_service_pb2.ListStagesRequest())).stages)


async def test_entry_point_plugin_is_discovered_listed_and_runs(
    serve_with_plugin: Callable[[str], ServerProcess],
) -> None:
    process = serve_with_plugin(ALL_BUILTINS)
    stages = await _stages(process.target)
    assert [(s.name, s.plugin, s.plugin_version) for s in stages] == [("stamp", "sample", "1.2.3")]
    async with aio.insecure_channel(process.target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        job = (
            await stub.CreateJob(
                job_service_pb2.CreateJobRequest(spec=job_pb2.JobSpec(brief=job_pb2.Brief(topic="plugins")))
            )
        ).job
        request = job_service_pb2.WatchJobRequest(job_id=job.id)
        events = await asyncio.wait_for(_collect(stub.WatchJob(request)), 60)
    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED
    assert any(e.stage == "stamp" and e.kind == job_pb2.EVENT_KIND_STEP_PROGRESS for e in events)
    assert Path(events[-1].output.video_path).read_text() == "stamped plugins\n"


async def _collect(stream: object) -> list[job_pb2.JobProgress]:
    return [event async for event in stream]  # type: ignore[attr-defined]


async def test_blocked_entry_point_plugin_is_not_loaded(
    serve_with_plugin: Callable[[str], ServerProcess],
) -> None:
    process = serve_with_plugin(f"{ALL_BUILTINS},sample")
    assert await _stages(process.target) == []


def test_register_stages(
    register_reelcast_plugin: Callable[[object, str], str], reelcast_plugin_host: PluginHost
) -> None:
    """The ``register_stages`` hook: stages registered through the callback appear in the pipeline."""

    class Extra:
        @hookimpl
        def register_stages(self, register: Callable[[Stage], None]) -> None:
            register(Stage(name="extra", title="Extra", weight=1, order=999, run=_noop))

    register_reelcast_plugin(Extra(), "extra-plugin")
    installed = reelcast_plugin_host.stage("extra")
    assert installed is not None and installed.plugin == "extra-plugin" and not installed.builtin
    assert reelcast_plugin_host.stages()[-1].stage.name == "extra"


def _noop(ctx: StageContext) -> None:
    ctx.report(1.0)


def test_a_plugin_replaces_a_builtin_stage_by_name() -> None:
    host = PluginHost.load(builtins=False)
    host.register_builtin(PipelinePlugin(), "builtin-shape")

    class Voice:
        @hookimpl
        def register_stages(self, register: Callable[[Stage], None]) -> None:
            register(Stage(name="voice", title="Better voice", weight=20, order=200, run=_noop))

    host.register(Voice(), "better-voice")
    voice = host.stage("voice")
    assert voice is not None and voice.plugin == "better-voice" and voice.stage.title == "Better voice"
    assert [installed.stage.name for installed in host.stages()] == [
        "script",
        "voice",
        "visuals",
        "render",
        "postprocess",
    ]


def test_two_third_party_plugins_with_the_same_stage_conflict_loudly() -> None:
    host = PluginHost.load(builtins=False)
    host.register(PipelinePlugin(), "one")
    host.register(PipelinePlugin(), "two")
    with pytest.raises(PluginConflictError):
        host.stages()


def test_a_misspelled_hook_fails_loudly() -> None:
    from pluggy import PluginValidationError

    class Typo:
        @hookimpl
        def register_stage(self, register: Callable[[Stage], None]) -> None:  # missing "s"
            raise AssertionError("never called")

    host = PluginHost.load(builtins=False)
    with pytest.raises(PluginValidationError):
        host.register(Typo(), "typo")


def test_every_hook_is_documented_in_docs_plugins() -> None:
    import inspect

    from reelcast.plugins import hookspecs

    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    hooks = [
        name for name, value in vars(hookspecs).items() if callable(value) and hasattr(value, "reelcast_spec")
    ]
    assert hooks, "no hooks found"
    for name in hooks:
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}"
        assert signature in text, f"docs/plugins.md lacks `{signature}`"
