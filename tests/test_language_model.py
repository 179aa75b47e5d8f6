"""The script stage's language model against a real OpenAI-compatible server: llama-cpp-python's, on
loopback, with the tiny SmolLM2-135M (tests/llm_server.py). A model that small writes nonsense, so these
tests judge the integration (structured output, streamed progress, retry, cancel, timeout, every failure's
code, the key kept secret), not the prose."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import with_defaults
from reelcast.plugins import ReelcastError
from reelcast.plugins.invocation import run_stage
from reelcast.plugins.settings import build_stage_settings
from reelcast.plugins.stage import Stage
from reelcast.plugins.testing import StageHarness
from tests.llm_server import BUILD_WAIT_SECONDS, LlmServer, closed_port, llm_server

__all__ = ["llm_server"]
# The first test's setup may wait for .ci/run's background build of .venv-llm; each test keeps its own
# hang guards (asyncio.wait_for) below.
pytestmark = pytest.mark.timeout(BUILD_WAIT_SECONDS + 600)

# Long enough that the tiny model streams for a while (cancel and timeout land mid-generation).
SPEC = job_pb2.JobSpec(
    brief=job_pb2.Brief(
        topic="How volcanoes form",
        audience="curious teenagers",
        key_points=["Magma rises through cracks in the crust", "Pressure builds until it erupts"],
    ),
    plan=job_pb2.Plan(target_duration_seconds=60),
)


def model_settings(server: LlmServer, **overrides: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "model": "smollm2",
        "api_key": server.api_key,
        # llama-cpp-python's server takes the schema as {"type": "json_object", "schema": ...}.
        "response_format": "json_object",
        "max_tokens": 1024,
        "timeout_seconds": 240.0,
        **overrides,
    }


class ScriptRun:
    """The script stage run by the job runner's own function, with its progress visible while it runs."""

    def __init__(self, harness: StageHarness, settings: Mapping[str, Any]) -> None:
        self.stage: Stage = harness.resolve("script")
        self.harness = harness
        self.settings = build_stage_settings("script", self.stage.settings, overrides=settings)
        self.progress: list[tuple[float, str]] = []
        self.cancel_event = asyncio.Event()
        self.first_token = asyncio.Event()

    def _report(self, fraction: float, message: str) -> None:
        self.progress.append((fraction, message))
        if message.startswith("Writing the script"):
            self.first_token.set()

    async def __call__(self) -> dict[str, Any]:
        return await run_stage(
            self.stage,
            job_id="llm-job",
            correlation_id="llm-corr",
            spec=with_defaults(SPEC),
            work_dir=self.harness.work_dir,
            log_dir=self.harness.log_dir,
            settings=self.settings,
            artifacts={},
            cancel_event=self.cancel_event,
            report=self._report,
        )

    def texts(self) -> str:
        return "\n".join(message for _, message in self.progress)


async def failure(run: ScriptRun) -> ReelcastError:
    with pytest.raises(ReelcastError) as raised:
        await asyncio.wait_for(run(), 300)
    return raised.value


async def test_the_model_writes_a_valid_script_artifact_with_streamed_progress(
    llm_server: LlmServer, reelcast_stage: StageHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = ScriptRun(reelcast_stage, model_settings(llm_server))
    artifacts = await asyncio.wait_for(run(), 300)

    assert artifacts == {"script": "script.json"}
    document = json.loads((reelcast_stage.work_dir / "script.json").read_text(encoding="utf-8"))
    assert document["language"] == "en"
    assert document["scenes"], document
    for scene in document["scenes"]:
        assert set(scene) == {"title", "narration", "caption", "visual_hint"}
        assert scene["narration"].strip() and scene["caption"].strip() and scene["visual_hint"].strip()
    # Progress follows the streamed tokens: several distinct ticks while the model writes, rising.
    ticks = [fraction for fraction, message in run.progress if message.startswith("Writing the script")]
    assert len(set(ticks)) >= 3, run.progress
    assert ticks == sorted(ticks)
    assert run.progress[-1] == (1.0, "Script written")
    # The key is sent, and never logged, reported or written.
    assert llm_server.api_key not in caplog.text
    assert llm_server.api_key not in run.texts()
    assert llm_server.api_key not in (reelcast_stage.work_dir / "script.json").read_text(encoding="utf-8")


async def test_an_answer_cut_short_is_asked_again_then_e113(
    llm_server: LlmServer, reelcast_stage: StageHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # Eight tokens cannot hold a script: both answers stop mid-JSON.
    run = ScriptRun(reelcast_stage, model_settings(llm_server, max_tokens=8))
    error = await failure(run)

    assert error.code == "E113-MODEL_OUTPUT_INVALID"
    assert "not JSON" in error.message
    retries = [record for record in caplog.records if "is not a usable script" in record.getMessage()]
    assert [record.args[0] for record in retries] == [1, 2]  # type: ignore[index]
    assert any(message == "Asking the language model again" for _, message in run.progress)
    assert not (reelcast_stage.work_dir / "script.json").exists()


async def test_an_unreachable_server_is_e110(reelcast_stage: StageHarness) -> None:
    run = ScriptRun(
        reelcast_stage, {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "sk-never-shown"}
    )
    error = await failure(run)

    assert error.code == "E110-MODEL_UNREACHABLE"
    assert "127.0.0.1" in error.message
    assert "sk-never-shown" not in error.message and "sk-never-shown" not in run.texts()


async def test_a_wrong_key_is_e111_and_neither_key_is_shown(
    llm_server: LlmServer, reelcast_stage: StageHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-" + llm_server.api_key[::-1]
    run = ScriptRun(reelcast_stage, model_settings(llm_server, api_key=wrong))
    error = await failure(run)

    assert error.code == "E111-MODEL_UNAUTHORIZED"
    assert "401" in error.message or "403" in error.message
    for key in (wrong, llm_server.api_key):
        assert key not in error.message and key not in run.texts() and key not in caplog.text


async def test_a_request_the_server_rejects_is_e114_with_its_status(
    llm_server: LlmServer, reelcast_stage: StageHarness
) -> None:
    # llama-cpp-python's server knows only {"type": "json_object", "schema": ...}: OpenAI's json_schema
    # form fails its request validation (with HTTP 500, and the reason in its body).
    run = ScriptRun(reelcast_stage, model_settings(llm_server, response_format="json_schema"))
    error = await failure(run)

    assert error.code == "E114-MODEL_HTTP_ERROR"
    assert "answered HTTP 500" in error.message and "json_object" in error.message
    assert llm_server.api_key not in error.message


async def test_a_model_slower_than_the_timeout_is_e112(
    llm_server: LlmServer, reelcast_stage: StageHarness
) -> None:
    run = ScriptRun(reelcast_stage, model_settings(llm_server, timeout_seconds=0.25))
    error = await failure(run)

    assert error.code == "E112-MODEL_TIMEOUT"
    assert "0.25 s" in error.message


async def test_cancel_mid_generation_ends_the_stage_cancelled(
    llm_server: LlmServer, reelcast_stage: StageHarness
) -> None:
    run = ScriptRun(reelcast_stage, model_settings(llm_server, max_tokens=2048))
    task = asyncio.ensure_future(run())
    await asyncio.wait_for(run.first_token.wait(), 120)
    assert not task.done()
    run.cancel_event.set()
    # A hang guard, not a speed requirement: the request is dropped at once, not after the answer.
    with pytest.raises(ReelcastError) as raised:
        await asyncio.wait_for(task, 30)
    assert raised.value.code == "E311-CANCELLED"
    assert not (reelcast_stage.work_dir / "script.json").exists()


def test_without_a_base_url_the_built_in_writer_writes(reelcast_stage: StageHarness) -> None:
    outcome = reelcast_stage.run("script", SPEC)
    document = json.loads(outcome.path("script.json").read_text(encoding="utf-8"))
    assert any("Magma rises" in scene["narration"] for scene in document["scenes"])


def test_the_settings_come_from_the_stage_variables() -> None:
    from reelcast.plugins.builtin.script import ScriptSettings

    settings = build_stage_settings(
        "script",
        ScriptSettings,
        {
            "REELCAST_PLUGIN_SCRIPT_BASE_URL": "http://127.0.0.1:11434/v1",
            "REELCAST_PLUGIN_SCRIPT_MODEL": "llama3.2",
            "REELCAST_PLUGIN_SCRIPT_TIMEOUT_SECONDS": "30",
        },
    )
    assert (settings.base_url, settings.model, settings.timeout_seconds) == (
        "http://127.0.0.1:11434/v1",
        "llama3.2",
        30.0,
    )
