"""The third-party example, examples/reelcast-intro-card, pip-installed into a fresh venv beside reelcast:
``reelcast serve`` from that venv lists its stage, runs it between Visuals and Rendering with its share of
the percent, and forgets it once it is uninstalled. Its own tests (on the plugin kit) pass there too.

Intentional divergence: the fresh venv does not install reelcast's dependencies from the registry (grpcio,
numpy, imageio-ffmpeg's ffmpeg and the rest are ~100 MB of downloads, minutes on a shared machine). A
``.pth`` file chains the development venv's site-packages, which holds reelcast (editable) and its
dependencies, so the venv starts in a second; the plugin itself is installed by pip into the fresh venv's
own site-packages, and uninstalled from there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from reelcast.jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from reelcast.server.execution.progress import INITIALIZATION_PERCENT
from tests.launcher import ReelcastProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "reelcast-intro-card"
BUILTIN_ORDER = ["script", "voice", "visuals", "render", "postprocess"]
SMALL_SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(topic="Why the sky is blue"),
    plan=job_pb2.Plan(target_duration_seconds=4),
    render=job_pb2.RenderSpec(width=320, height=180, fps=10),
)


class FreshVenv:
    def __init__(self, root: Path) -> None:
        self.root = root
        venv.EnvBuilder(with_pip=False).create(root)
        self.python = root / "bin" / "python"
        self.site_packages = Path(
            subprocess.run(
                [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        development = sysconfig.get_paths()["purelib"]
        (self.site_packages / "reelcast-development-venv.pth").write_text(
            f"import site; site.addsitedir({development!r})\n"
        )

    def run(self, *args: str, timeout: float = 120.0, cwd: Path | None = None) -> str:
        result = subprocess.run(
            [str(self.python), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
        )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def pip(self, *args: str) -> str:
        return self.run("-m", "pip", "--disable-pip-version-check", "--no-input", *args)


class VenvServer:
    """``reelcast serve`` run by the fresh venv's interpreter, gRPC only, on 127.0.0.1:0."""

    def __init__(self, python: Path, data_dir: Path) -> None:
        args = ["--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--no-bridge"]
        log_path = data_dir.parent / f"{data_dir.name}.log"
        self.child = ReelcastProcess("serve", args, log_path, program=[str(python), "-m", "reelcast.cli"])
        self.target = self.child.start()

    def stages(self) -> list[job_pb2.Stage]:
        with grpc.insecure_channel(self.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            return list(stub.ListStages(job_service_pb2.ListStagesRequest(), timeout=30).stages)

    def run_job(self, spec: job_pb2.JobSpec) -> list[job_pb2.JobProgress]:
        with grpc.insecure_channel(self.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job = stub.CreateJob(job_service_pb2.CreateJobRequest(spec=spec), timeout=30).job
            watch = job_service_pb2.WatchJobRequest(job_id=job.id)
            return list(stub.WatchJob(watch, timeout=180))

    def stop(self) -> None:
        self.child.stop()


@pytest.fixture(scope="module")
def example_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's source, copied: setuptools' build/ and egg-info never land in the repository."""
    return shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("source") / "reelcast-intro-card")


def install_example(environment: FreshVenv, source: Path) -> None:
    environment.pip("install", "--quiet", "--no-deps", "--no-build-isolation", str(source))


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, example_copy: Path) -> FreshVenv:
    environment = FreshVenv(tmp_path_factory.mktemp("fresh") / "venv")
    install_example(environment, example_copy)
    return environment


@pytest.fixture
def serve(fresh_venv: FreshVenv, tmp_path: Path) -> Iterator[Callable[[], VenvServer]]:
    started: list[VenvServer] = []

    def start() -> VenvServer:
        started.append(VenvServer(fresh_venv.python, tmp_path / f"data{len(started)}"))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def spans(stages: list[job_pb2.Stage]) -> dict[str, tuple[float, float]]:
    """Each stage's share of the overall percent, from the weights ListStages reports."""
    total = sum(stage.weight for stage in stages)
    position, result = INITIALIZATION_PERCENT, {}
    for stage in stages:
        share = (100.0 - INITIALIZATION_PERCENT) * stage.weight / total
        result[stage.name] = (position, position + share)
        position += share
    return result


def test_the_example_is_installed_into_the_fresh_venv_not_the_development_one(fresh_venv: FreshVenv) -> None:
    location = fresh_venv.run("-c", "import reelcast_intro_card; print(reelcast_intro_card.__file__)")
    assert Path(location.strip()).is_relative_to(fresh_venv.site_packages)
    with pytest.raises(ImportError):
        __import__("reelcast_intro_card")


def test_installed_it_is_listed_runs_in_its_position_with_its_share_and_uninstalled_it_is_gone(
    fresh_venv: FreshVenv, example_copy: Path, serve: Callable[[], VenvServer]
) -> None:
    server = serve()
    stages = server.stages()
    assert [stage.name for stage in stages] == [
        "script",
        "voice",
        "visuals",
        "intro-card",
        "render",
        "postprocess",
    ]
    intro = next(stage for stage in stages if stage.name == "intro-card")
    assert (intro.plugin, intro.plugin_version, intro.title) == ("intro-card", "0.1.0", "Intro card")

    events = server.run_job(SMALL_SPEC)

    assert events[-1].kind == job_pb2.EVENT_KIND_JOB_COMPLETED, events[-1]
    started = [e.stage for e in events if e.stage and e.stage_status == job_pb2.STEP_STATUS_RUNNING]
    assert list(dict.fromkeys(started)) == [stage.name for stage in stages]
    start, end = spans(stages)["intro-card"]
    # Weight 5 of 95: its share sits between Visuals and Rendering, which starts where it ends.
    assert start == pytest.approx(10 + 90 * 60 / 95)
    assert end == pytest.approx(10 + 90 * 65 / 95)
    percents = [e.job_percent for e in events if e.stage == "intro-card"]
    assert percents[0] == pytest.approx(start, abs=1e-3)
    assert percents[-1] == pytest.approx(end, abs=1e-3)
    assert all(start - 1e-3 <= percent <= end + 1e-3 for percent in percents)
    assert any(e.kind == job_pb2.EVENT_KIND_STEP_PROGRESS for e in events if e.stage == "intro-card")
    render_first = next(e.job_percent for e in events if e.stage == "render")
    assert render_first == pytest.approx(end, abs=1e-3)
    video = Path(events[-1].output.video_path)
    assert (video.parent / "intro-card" / "card.png").is_file()
    server.stop()

    fresh_venv.pip("uninstall", "--yes", "--quiet", "reelcast-intro-card")
    try:
        assert [stage.name for stage in serve().stages()] == BUILTIN_ORDER
    finally:  # the venv is shared by this module's tests
        install_example(fresh_venv, example_copy)


def test_the_examples_own_tests_pass_on_the_kit_in_the_fresh_venv(fresh_venv: FreshVenv) -> None:
    # pytest finds the kit through reelcast's pytest11 entry point and the plugin through its own.
    output = fresh_venv.run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(EXAMPLE),
        str(EXAMPLE / "tests"),
        cwd=EXAMPLE,
        timeout=240,
    )
    assert re.search(r"\b\d+ passed\b", output), output
    assert "skipped" not in output, output
