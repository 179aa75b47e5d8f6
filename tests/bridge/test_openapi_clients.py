"""Clients that reelcast did not write, generated at test time from the live bridge's /api/openapi.json,
type-check and read real answers of real jobs: created, running, succeeded, failed and cancelled.

- Python: openapi-python-client generates a package, mypy checks it, and it calls the live bridge.
- TypeScript: openapi-typescript generates the types, and tsc --noEmit checks a file that assigns answers
  captured from the live bridge (object literals, so a field the document does not declare is an error too).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelcast.server.app import ReelcastServer
from tests.bridge.conftest import HANG_TIMEOUT, create_job, read_sse
from tests.stages import PipelinePlugin
from tests.webhook_receiver import running_receiver

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NODE_BIN = REPO / "node_modules" / ".bin"
# The artifacts are bytes; the generator reads them as such when told their types are octet streams.
GENERATOR_CONFIG = {
    "project_name_override": "reelcast_rest",
    "package_name_override": "reelcast_rest",
    "content_type_overrides": {
        media: "application/octet-stream" for media in ("video/mp4", "image/jpeg", "application/x-subrip")
    },
}


def run(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


async def capture_answers(client: httpx.AsyncClient, server: ReelcastServer) -> dict[str, Any]:
    """Real answers of the bridge, by name: jobs in every state, the lists, the stages, health, an error."""
    answers: dict[str, Any] = {}
    server.host.register(PipelinePlugin(hang_at="visuals"), "pipeline")
    hanging = await create_job(client, "Hangs")
    answers["created"] = hanging
    for _ in range(int(HANG_TIMEOUT / 0.02)):
        job = (await client.get(f"/api/jobs/{hanging['jobId']}")).json()
        if job["stageName"] == "visuals":
            break
        await asyncio.sleep(0.02)
    assert job["status"] == "Running", job
    answers["running"] = job
    await client.post(f"/api/jobs/{hanging['jobId']}/cancel")
    await read_sse(client, f"/api/jobs/{hanging['jobId']}/events")
    answers["cancelled"] = (await client.get(f"/api/jobs/{hanging['jobId']}")).json()
    answers["cancelledDetails"] = (await client.get(f"/api/jobs/{hanging['jobId']}/failure-details")).json()

    server.host.unregister(name="pipeline")
    server.host.register(PipelinePlugin(fail_at="render"), "pipeline")
    failed = await create_job(client, "Fails")
    await read_sse(client, f"/api/jobs/{failed['jobId']}/events")
    answers["failed"] = (await client.get(f"/api/jobs/{failed['jobId']}")).json()
    answers["failedDetails"] = (await client.get(f"/api/jobs/{failed['jobId']}/failure-details")).json()

    server.host.unregister(name="pipeline")
    server.host.register(PipelinePlugin(), "pipeline")
    succeeded = await create_job(client, "Succeeds")
    await read_sse(client, f"/api/jobs/{succeeded['jobId']}/events")
    answers["succeeded"] = (await client.get(f"/api/jobs/{succeeded['jobId']}")).json()
    answers["jobList"] = (await client.get("/api/jobs")).json()
    answers["stageList"] = (await client.get("/api/stages")).json()
    answers["health"] = (await client.get("/healthz")).json()
    answers["problem"] = (await client.get("/api/jobs/nope")).json()
    with running_receiver() as receiver:
        created = await client.post(
            "/api/webhooks", json={"url": receiver.url, "filter": "statuses", "statuses": ["Succeeded"]}
        )
        assert created.status_code == 201, created.text
        answers["createdWebhook"] = created.json()
        webhook = f"/api/webhooks/{created.json()['webhookId']}"
        answers["webhookList"] = (await client.get("/api/webhooks")).json()
        answers["rotatedSecret"] = (await client.post(f"{webhook}/rotate-secret")).json()
        replay = {"jobId": succeeded["jobId"], "fromSequence": 1}
        answers["webhookReplay"] = (await client.post(f"{webhook}/replay", json=replay)).json()
        assert (await client.delete(webhook)).status_code == 204
    assert [answers[k]["status"] for k in ("cancelled", "failed", "succeeded")] == ["Failed"] * 2 + [
        "Succeeded"
    ]
    return answers


SCHEMA_OF = {
    "created": "Job",
    "running": "Job",
    "cancelled": "Job",
    "failed": "Job",
    "succeeded": "Job",
    "cancelledDetails": "FailureDetails",
    "failedDetails": "FailureDetails",
    "jobList": "JobList",
    "stageList": "StageList",
    "health": "Health",
    "problem": "Problem",
    "createdWebhook": "CreatedWebhook",
    "webhookList": "WebhookList",
    "rotatedSecret": "WebhookSecret",
    "webhookReplay": "WebhookReplay",
}


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook receivers on loopback are allowed (read when the server starts: this fixture comes first)."""
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")


def typescript_check(answers: dict[str, Any]) -> str:
    lines = ['import type { components } from "./schema";', 'type S = components["schemas"];']
    for name, value in answers.items():
        lines.append(f'export const {name}: S["{SCHEMA_OF[name]}"] = {json.dumps(value, indent=1)};')
    # A field the clients rely on, used as its generated type says.
    lines.append("export const firstStage: string = stageList.stages[0].title;")
    return "\n".join(lines) + "\n"


async def test_generated_python_and_typescript_clients_type_check_and_read_real_answers(
    loopback_allowed: None, client: httpx.AsyncClient, server: ReelcastServer, bridge_url: str, tmp_path: Path
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    answers = await capture_answers(client, server)
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    (tmp_path / "config.json").write_text(json.dumps(GENERATOR_CONFIG))

    # TypeScript: the generated types accept every real answer, with no field left undeclared.
    assert (NODE_BIN / "tsc").exists(), "run `make node_modules/.installed`"
    run([str(NODE_BIN / "openapi-typescript"), "openapi.json", "--output", "schema.d.ts"], tmp_path)
    (tmp_path / "answers.ts").write_text(typescript_check(answers))
    run(
        [
            str(NODE_BIN / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "answers.ts",
        ],
        tmp_path,
    )

    # Python: the generated package type-checks and parses the live bridge's answers into its models.
    generator = str(VENV_BIN / "openapi-python-client")
    run(
        [
            generator,
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.json",
            "--meta",
            "none",
            "--output-path",
            "reelcast_rest",
        ],
        tmp_path,
    )
    # What the document generates: the models and the operations. The generator's fixed client.py template
    # trips mypy on httpx's __exit__ signature whatever the document says, so only imported from there.
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent"]
    run([*mypy, "-p", "reelcast_rest.models", "-p", "reelcast_rest.api"], tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        await asyncio.to_thread(_read_with_generated_client, bridge_url, answers)
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith("reelcast_rest")]:
            del sys.modules[module]


def _read_with_generated_client(bridge_url: str, answers: dict[str, Any]) -> None:
    rest = importlib.import_module("reelcast_rest")
    models = importlib.import_module("reelcast_rest.models")
    get_job = importlib.import_module("reelcast_rest.api.default.get_api_jobs_job_id")
    get_stages = importlib.import_module("reelcast_rest.api.default.get_api_stages")
    list_jobs = importlib.import_module("reelcast_rest.api.default.get_api_jobs")
    details = importlib.import_module("reelcast_rest.api.default.get_api_jobs_job_id_failure_details")
    with rest.Client(base_url=bridge_url, raise_on_unexpected_status=True) as api:
        stages = get_stages.sync(client=api)
        assert isinstance(stages, models.StageList)
        assert [s.title for s in stages.stages] == [s["title"] for s in answers["stageList"]["stages"]]
        listed = list_jobs.sync(client=api)
        assert isinstance(listed, models.JobList)
        assert {j.job_id for j in listed.jobs} >= {answers[k]["jobId"] for k in ("failed", "succeeded")}
        for state in ("cancelled", "failed", "succeeded"):
            job = get_job.sync(answers[state]["jobId"], client=api)
            assert isinstance(job, models.Job), job
            assert job.additional_properties == {}, state
            assert job.to_dict() == answers[state], state
            assert job.status.value == answers[state]["status"]
        failure = details.sync(answers["failed"]["jobId"], client=api)
        assert isinstance(failure, models.FailureDetails)
        assert failure.error_code == answers["failedDetails"]["errorCode"]
        missing = get_job.sync("nope", client=api)
        assert isinstance(missing, models.Problem)
        assert missing.error_code == "E003-JOB_NOT_FOUND"
        _manage_a_webhook(api, models)
    # Answers captured mid-run parse as well (the running job is gone by now).
    for name, schema in SCHEMA_OF.items():
        parsed = getattr(models, schema).from_dict(answers[name])
        assert parsed.to_dict() == answers[name], name


def _manage_a_webhook(api: Any, models: Any) -> None:
    """The generated client creates, lists and deletes a webhook endpoint."""
    create = importlib.import_module("reelcast_rest.api.default.post_api_webhooks")
    list_webhooks = importlib.import_module("reelcast_rest.api.default.get_api_webhooks")
    delete = importlib.import_module("reelcast_rest.api.default.delete_api_webhooks_webhook_id")
    with running_receiver() as receiver:
        body = models.CreateWebhookBody(url=receiver.url, filter_=models.CreateWebhookBodyFilter("terminal"))
        created = create.sync(client=api, body=body)
        assert isinstance(created, models.CreatedWebhook), created
        assert created.secret.startswith("whsec_")
        assert created.filter_.value == "terminal"
        assert (created.failing, created.last_error) == (False, "")
        listed = list_webhooks.sync(client=api)
        assert isinstance(listed, models.WebhookList)
        assert [w.webhook_id for w in listed.webhooks] == [created.webhook_id]
        assert delete.sync_detailed(created.webhook_id, client=api).status_code == 204
        assert list_webhooks.sync(client=api).webhooks == []
        refused = create.sync(client=api, body=models.CreateWebhookBody(url="ftp://x"))
        assert isinstance(refused, models.Problem)
        assert refused.error_code == "E090-WEBHOOK_URL_INVALID"
