"""A pytest plugin for plugin authors (installed with reelcast through the ``pytest11`` entry point).

Fixtures:

- ``reelcast_plugin_host``: a :class:`PluginHost` with the built-in stages and installed plugins;
- ``register_reelcast_plugin``: ``register_reelcast_plugin(plugin, name)`` registers a plugin object into
  that host for one test and always unregisters it afterwards, even when the test fails;
- ``reelcast_stage``: a :class:`StageHarness` that runs ONE stage in isolation, with the same
  :class:`StageContext` the job runner builds (a temp work dir, the spec with its defaults, the upstream
  artifacts you give it) and every progress report collected;
- ``reelcast_server``: ``reelcast_server(plugin, name, builtins=True)`` starts a real reelcast server on
  ``127.0.0.1:0`` with a temp data dir and your plugin registered, and runs whole jobs on it
  (:class:`ReelcastTestServer`). Every server is stopped when the test ends.

Both harnesses are synchronous, so a plugin's tests need no asyncio plugin for pytest: the server runs its
own event loop in a thread. ``StageHarness.run_async`` is there for tests that already run in a loop.

Every pytest run loads this module (it is a ``pytest11`` plugin), so it imports the server and grpc only
inside ``reelcast_server``, the one fixture that needs them: a plain import loads neither the server nor
sqlite3.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reelcast.jobs.terminal import TERMINAL_KINDS
from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.jobs.validation import validate_spec, with_defaults
from reelcast.plugins.host import PluginHost
from reelcast.plugins.invocation import run_stage
from reelcast.plugins.settings import build_stage_settings
from reelcast.plugins.stage import MediaFile, Stage

# What a test module may import from the kit (the fixtures themselves need no import).
__all__ = ["JobRun", "PluginHost", "ReelcastTestServer", "StageHarness", "StageOutcome"]

if TYPE_CHECKING:
    from reelcast.jobs.v1 import job_service_pb2_grpc
    from reelcast.server.app import ReelcastServer
    from reelcast.server.config import Settings


def _test_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: every progress tick is recorded, stopping is quick, and the loopback-only test
    server needs no API key (a plugin author's tests exercise their stage, not reelcast's auth)."""
    from reelcast.server.config import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "grpc_listen": "127.0.0.1:0",
        "progress_min_interval_seconds": 0.0,
        "shutdown_grace_seconds": 0.5,
        "auth_required": False,
    }
    values.update(overrides)
    return Settings(**values)


def _spec_with_defaults(spec: job_pb2.JobSpec | None) -> job_pb2.JobSpec:
    """The spec as a stage sees it in a real job: validated, with the server's defaults filled in."""
    spec = spec if spec is not None else job_pb2.JobSpec(brief=job_pb2.Brief(topic="A test topic"))
    violations = validate_spec(spec)
    if violations:
        raise ValueError(f"invalid JobSpec: {violations}")
    return with_defaults(spec)


# -- one stage in isolation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedPreview:
    """One preview a stage published (``StageContext.publish_preview``)."""

    relative: str
    duration_seconds: float
    total_seconds: float
    copy: Path


@dataclass
class StageOutcome:
    """What one stage run produced."""

    stage: str
    artifacts: dict[str, Any]
    # Every ``ctx.report(fraction, message)`` in call order, fractions already clamped to 0..1.
    progress: list[tuple[float, str]]
    work_dir: Path
    # Every ``ctx.publish_preview`` in call order, each with a copy of its file taken when it was published
    # (the stage may remove a preview once a longer one is out).
    previews: list[PublishedPreview] = field(default_factory=list)

    def path(self, relative: str) -> Path:
        """An artifact path (relative to the work dir) as an absolute path."""
        return self.work_dir / relative

    @property
    def fractions(self) -> list[float]:
        return [fraction for fraction, _ in self.progress]


class StageHarness:
    """Runs stages one at a time in one work dir, as the job runner would.

    Artifacts accumulate like in a job: after each run, the stage's artifacts are merged into
    :attr:`artifacts`, which is what the next stage sees unless ``artifacts=`` is given. So a test can
    chain built-in stages to produce real upstream artifacts, then run its own stage on them.
    """

    def __init__(self, work_dir: Path, log_dir: Path, host: PluginHost) -> None:
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.host = host
        self.artifacts: dict[str, Any] = {}
        self.job_id = "stage-harness-job"
        self.correlation_id = "stage-harness"
        # The uploaded files stages may ask for by id (``ctx.media``): a test puts MediaFile records here.
        self.media: dict[str, MediaFile] = {}
        # The cancel signal of the latest run (``run_async``): set it from another task to cancel the stage.
        self.cancel_event: asyncio.Event | None = None
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """A path in the work dir: write upstream artifacts here before running a stage."""
        return self.work_dir / relative

    def resolve(self, stage: Stage | str) -> Stage:
        """A :class:`Stage`, or the installed stage of that name (built-ins and installed plugins)."""
        if isinstance(stage, Stage):
            return stage
        installed = self.host.stage(stage)
        if installed is None:
            names = [candidate.stage.name for candidate in self.host.stages()]
            raise LookupError(f"no stage named {stage!r}; installed: {names}")
        return installed.stage

    def run(
        self,
        stage: Stage | str,
        spec: job_pb2.JobSpec | None = None,
        artifacts: Mapping[str, Any] | None = None,
        *,
        cancelled: bool = False,
        settings: Mapping[str, Any] | None = None,
        timeout: float = 300.0,
    ) -> StageOutcome:
        """Runs ``stage`` to its end in a fresh event loop (from a synchronous test)."""
        return asyncio.run(
            asyncio.wait_for(
                self.run_async(stage, spec, artifacts, cancelled=cancelled, settings=settings), timeout
            )
        )

    async def run_async(
        self,
        stage: Stage | str,
        spec: job_pb2.JobSpec | None = None,
        artifacts: Mapping[str, Any] | None = None,
        *,
        cancelled: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> StageOutcome:
        """Runs ``stage`` in the running loop. ``cancelled=True`` starts it with the cancel signal set.

        The stage gets its own settings as a job would, from its defaults and ``settings`` (``{field:
        value}``, strings converted like environment values); the harness reads no environment."""
        resolved = self.resolve(stage)
        progress: list[tuple[float, str]] = []
        cancel_event = asyncio.Event()
        if cancelled:
            cancel_event.set()
        self.cancel_event = cancel_event
        upstream = dict(self.artifacts if artifacts is None else artifacts)
        previews: list[PublishedPreview] = []
        copies = self.work_dir.parent / f"{self.work_dir.name}-previews"

        async def preview(relative: str, seconds: float, total: float) -> None:
            copies.mkdir(parents=True, exist_ok=True)
            copy = copies / f"{resolved.name}-{len(previews) + 1}{Path(relative).suffix}"
            await asyncio.to_thread(shutil.copyfile, self.work_dir / relative, copy)
            previews.append(PublishedPreview(relative, seconds, total, copy))

        produced = await run_stage(
            resolved,
            job_id=self.job_id,
            correlation_id=self.correlation_id,
            spec=_spec_with_defaults(spec),
            work_dir=self.work_dir,
            log_dir=self.log_dir,
            settings=build_stage_settings(resolved.name, resolved.settings, overrides=settings or {}),
            artifacts=upstream,
            cancel_event=cancel_event,
            report=lambda fraction, message: progress.append((fraction, message)),
            media=self.media.get,
            preview=preview,
        )
        self.artifacts = {**upstream, **produced}
        return StageOutcome(resolved.name, produced, progress, self.work_dir, previews)


@pytest.fixture
def reelcast_stage(tmp_path: Path, reelcast_plugin_host: PluginHost) -> StageHarness:
    """Runs one stage in isolation: ``reelcast_stage.run(stage_or_name, spec, artifacts)``."""
    return StageHarness(tmp_path / "work", tmp_path / "data" / "Logs", reelcast_plugin_host)


# -- whole jobs on a real server ------------------------------------------------------------------------


@dataclass
class JobRun:
    """A finished job: its final state and every event of its log, in sequence order."""

    job: job_pb2.Job
    events: list[job_pb2.JobProgress] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.job.status == job_pb2.JOB_STATUS_SUCCEEDED

    @property
    def terminal(self) -> job_pb2.JobProgress:
        return self.events[-1]

    def stage_events(self, stage: str) -> list[job_pb2.JobProgress]:
        return [event for event in self.events if event.stage == stage]

    def stage_order(self) -> list[str]:
        """The stages in the order they started running."""
        started = [e.stage for e in self.events if e.stage_status == job_pb2.STEP_STATUS_RUNNING and e.stage]
        return list(dict.fromkeys(started))


class ReelcastTestServer:
    """A real :class:`ReelcastServer` on 127.0.0.1:0, run by its own event loop in a thread."""

    def __init__(self, settings: Settings, host: PluginHost) -> None:
        self.settings = settings
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reelcast-test-server", daemon=True
        )
        self._thread.start()
        import grpc

        from reelcast.jobs.v1 import job_service_pb2_grpc

        try:
            self.server: ReelcastServer = self._call(self._create(settings, host), 30)
        except BaseException:
            self._stop_loop()
            raise
        self.target = self.server.target
        self._channel = grpc.insecure_channel(self.target)
        self.stub: job_service_pb2_grpc.JobServiceStub = job_service_pb2_grpc.JobServiceStub(self._channel)

    @staticmethod
    async def _create(settings: Settings, host: PluginHost) -> ReelcastServer:
        from reelcast.server.app import ReelcastServer

        # Built inside the loop: the gRPC server and the runner bind to the loop they are created in.
        server = ReelcastServer(settings, host=host)
        await server.start()
        return server

    def _call(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stages(self) -> list[job_pb2.Stage]:
        """``ListStages`` as a client sees it."""
        return list(self.stub.ListStages(job_service_pb2.ListStagesRequest(), timeout=30).stages)

    def create_job(self, spec: job_pb2.JobSpec) -> job_pb2.Job:
        return self.stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), timeout=30).job

    def watch(
        self, job_id: str, after_sequence: int = 0, timeout: float = 300.0
    ) -> list[job_pb2.JobProgress]:
        """Every event after ``after_sequence`` up to the terminal one."""
        request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after_sequence)
        return list(self.stub.WatchJob(request, timeout=timeout))

    def run_job(self, spec: job_pb2.JobSpec | None = None, *, timeout: float = 300.0) -> JobRun:
        """Creates a job, watches it to its terminal event and returns it with its events."""
        spec = spec if spec is not None else job_pb2.JobSpec(brief=job_pb2.Brief(topic="A test topic"))
        created = self.create_job(spec)
        events = self.watch(created.id, timeout=timeout)
        if not events or events[-1].kind not in TERMINAL_KINDS:
            raise AssertionError(f"job {created.id} ended without a terminal event")
        job = self.stub.GetJob(job_service_pb2.GetJobRequest(job_id=created.id), timeout=30).job
        return JobRun(job, events)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._channel.close()
        try:
            self._call(self.server.stop(grace=0.5), 60)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


ServerFactory = Callable[..., ReelcastTestServer]


@pytest.fixture
def reelcast_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """``reelcast_server(plugin=None, name="plugin-under-test", *, builtins=True, disabled=(), **settings)``
    starts a real server with ``plugin`` registered (skipped when an installed entry point already
    registered the same object). ``builtins=False`` leaves the built-in stages out; ``settings`` override
    :class:`Settings` fields."""
    started: list[ReelcastTestServer] = []

    def start(
        plugin: object | None = None,
        name: str = "plugin-under-test",
        *,
        builtins: bool = True,
        disabled: tuple[str, ...] = (),
        **settings: Any,
    ) -> ReelcastTestServer:
        host = PluginHost.load(disabled, builtins=builtins)
        if plugin is not None and not host.manager.is_registered(plugin):
            host.register(plugin, name)
        data_dir = tmp_path / f"reelcast-data-{len(started)}"
        server = ReelcastTestServer(_test_settings(data_dir, **settings), host)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def reelcast_plugin_host() -> PluginHost:
    return PluginHost.load()


@pytest.fixture
def register_reelcast_plugin(reelcast_plugin_host: PluginHost) -> Iterator[Callable[[object, str], str]]:
    registered: list[str] = []

    def register(plugin: object, name: str) -> str:
        registered.append(reelcast_plugin_host.register(plugin, name))
        return registered[-1]

    try:
        yield register
    finally:
        for name in reversed(registered):
            reelcast_plugin_host.unregister(name)
