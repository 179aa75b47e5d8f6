"""A base install serves: ``pip install reelcast`` with no extras, in a fresh venv, runs ``reelcast serve``
and takes a real job to ``job-completed`` with a playable MP4; ``--store nats://`` there gets E030 naming
``pip install 'reelcast[nats]'``, never a traceback; and every module that needs no extra imports.

Unlike tests/interop/test_example_plugin.py, which chains the development venv to start in a second, this venv
is truly fresh: that is the point, since the development venv holds every extra (nats-py, pytest...) and would
hide an import of one. uv (a dev dependency) makes the venv and installs reelcast's runtime dependencies from
PyPI, resolving the same requirements that ``pip install reelcast`` would, in seconds where pip took minutes
of CI's budget; nothing is installed into the development venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.launcher import ReelcastProcess
from tests.media import decode_exit_code

REPO = Path(__file__).resolve().parents[1]
# What the source tree holds beside the package sources: never part of an install.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "*.egg-info", "__pycache__", ".*_cache", "bench", "tests"
)
# Modules of the package that need an extra, and the extra: every other module imports in a base install.
NEEDS_EXTRA = {
    "reelcast.server.storage.nats.layout": "nats",
    "reelcast.server.storage.nats.job_store": "nats",
    "reelcast.server.storage.nats.work": "nats",
    "reelcast.server.storage.nats.keys": "nats",
    "reelcast.server.storage.nats.backend": "nats",
    "reelcast.server.storage.nats.media_store": "nats",
    "reelcast.server.storage.nats.subtasks": "nats",
    "reelcast.server.webhooks.nats_registry": "nats",
    "reelcast.server.webhooks.nats_outbox": "nats",
    # The pytest plugin of the plugin kit, loaded only by pytest (a pytest11 entry point).
    "reelcast.plugins.testing": "pytest",
}
SMALL_JOB = {
    "brief": {"topic": "Why a base install must serve"},
    "plan": {"targetDurationSeconds": 3},
    "render": {"width": 320, "height": 180, "fps": 10},
}
pytestmark = pytest.mark.timeout(900)


class BaseVenv:
    """A fresh venv holding ``<repo>`` installed without extras and nothing else."""

    def __init__(self, root: Path, source: Path) -> None:
        self.uv = str(Path(sys.executable).parent / "uv")
        subprocess.run(
            [self.uv, "venv", "--quiet", "--python", sys.executable, str(root)], check=True, timeout=120
        )
        self.bin = root / "bin"
        # Only the variables a user's shell would have: nothing that points into the development venv.
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("REELCAST_")
        }
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env.get('PATH', '')}"
        self.pip("install", "--quiet", str(source))

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``uv pip`` on this venv (it has no pip of its own)."""
        command = [self.uv, "pip", *args, "--python", str(self.bin / "python")]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env=self.env, check=False
        )
        assert result.returncode == 0, f"uv pip {args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def run(
        self, program: str, *args: str, timeout: float = 600.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.bin.parent,  # never the repository, whose directories could shadow the install
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{program} {args} failed:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> BaseVenv:
    # A copy of the sources, so that the build's build/ and egg-info never land in the repository.
    source = shutil.copytree(REPO, tmp_path_factory.mktemp("source") / "reelcast", ignore=NOT_SOURCES)
    return BaseVenv(tmp_path_factory.mktemp("base") / "venv", source)


@pytest.fixture
def served(base_venv: BaseVenv, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``reelcast serve`` of the base venv (gRPC and the web bridge on free ports, authentication on), and a
    key made with ``reelcast keys create``: (the bridge's base URL, the key)."""
    data_dir = tmp_path / "data"
    created = base_venv.run("reelcast", "keys", "create", "--user", "alice", "--data-dir", str(data_dir))
    key = created.stdout.strip().splitlines()[-1]
    args = ["--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    program = [str(base_venv.bin / "reelcast")]
    served = ReelcastProcess(
        "serve", args, tmp_path / "serve.log", base_venv.env, program=program, inherit_env=False
    )
    try:
        served.start(timeout=90)
        yield served.http_base, key
    finally:
        served.stop()
        # Read after the fact: a serve that logged a traceback while serving failed too.
        assert "Traceback" not in served.output(), served.output()


def sse_event_names(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("event:"):
            yield line.removeprefix("event:").strip()


def test_the_base_install_holds_no_extra(base_venv: BaseVenv) -> None:
    listed = base_venv.pip("list", "--format=freeze").stdout.lower()
    # httpx is no extra: the script stage's language model client needs it.
    for extra_package in ("nats-py", "pytest", "sse-starlette"):
        assert f"{extra_package}==" not in listed, listed


def test_a_base_install_serves_a_real_job_to_the_end(served: tuple[str, str], tmp_path: Path) -> None:
    base_url, key = served
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        created = client.post("/api/jobs", json=SMALL_JOB)
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]
        with client.stream("GET", f"/api/jobs/{job_id}/events", timeout=300) as events:
            assert events.status_code == 200
            names = list(sse_event_names(events))
        assert names[-1] == "job-completed", names
        output = client.get(f"/api/jobs/{job_id}/output")
        assert output.status_code == 200
        assert output.headers["content-type"] == "video/mp4"
    video = tmp_path / "video.mp4"
    video.write_bytes(output.content)
    assert decode_exit_code(video) == 0


def test_a_base_install_speaks_english_with_piper_joe_the_same_bytes_every_time(base_venv: BaseVenv) -> None:
    probe = (
        "import json\n"
        "from reelcast.plugins.builtin import piper_tts, voices\n"
        "voice = voices.find_voice('', 'en')\n"
        "text = 'A base install speaks with Piper.'\n"
        "first, second = (piper_tts.synthesize(text, voice.piper, rate=160) for _ in range(2))\n"
        "print(json.dumps({'key': voice.key, 'engine': voice.engine, 'same': first.pcm == second.pcm,\n"
        "                  'words': len(first.words), 'seconds': len(first.pcm) / 2 / first.sample_rate}))\n"
    )
    import json

    report = json.loads(base_venv.run("python", "-c", probe).stdout)
    assert (report["key"], report["engine"], report["same"]) == ("en-us-joe", "piper", True)
    assert report["words"] == 6 and report["seconds"] > 1


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--no-bridge", "--grpc-listen", "127.0.0.1:0"],
        ["server", "--grpc-listen", "127.0.0.1:0"],
        ["worker"],
        ["keys", "list"],
    ],
    ids=lambda command: command[0],
)
def test_choosing_the_nats_store_without_the_extra_names_the_extra(
    base_venv: BaseVenv, tmp_path: Path, command: list[str]
) -> None:
    # Nothing listens there: the extra is missing, so no connection is ever tried.
    args = [*command, "--store", "nats://127.0.0.1:1", "--data-dir", str(tmp_path / "data")]
    result = base_venv.run("reelcast", *args, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    output = " ".join(output.split())  # the console wraps long lines
    assert "E030-NATS_NOT_INSTALLED" in output, output
    assert "pip install 'reelcast[nats]'" in output, output
    assert "Traceback" not in output, output


def test_every_module_that_needs_no_extra_imports_in_a_base_install(base_venv: BaseVenv) -> None:
    probe = (
        "import importlib, json, pkgutil, sys\n"
        "import reelcast\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(reelcast.__path__, 'reelcast.'))\n"
        f"skipped = {sorted(NEEDS_EXTRA)!r}\n"
        "failed = {}\n"
        "for name in names:\n"
        "    if name in skipped:\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        failed[name] = repr(error)\n"
        "dev_only = ('nats', 'pytest', 'hypothesis', 'sse_starlette')\n"
        "extras = [m for m in dev_only if m in sys.modules]\n"
        "print(json.dumps({'names': names, 'failed': failed, 'extras': extras}))\n"
    )
    import json

    report = json.loads(base_venv.run("python", "-c", probe).stdout)
    assert "reelcast.cli" in report["names"] and "reelcast.bridge.app" in report["names"]
    assert set(NEEDS_EXTRA) <= set(report["names"]), "a module named here no longer exists"
    assert report["failed"] == {}
    assert report["extras"] == []
