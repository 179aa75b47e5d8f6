"""``reelcast webhooks``: a real CLI process against a real server (docs/webhooks.md)."""

from __future__ import annotations

import pytest

from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from tests.test_cli import run_cli


async def test_reelcast_webhooks_creates_lists_rotates_and_deletes_an_endpoint(
    settings: Settings, bare_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELCAST_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    server = ReelcastServer(settings, host=bare_host)
    await server.start()
    try:
        target = ["--target", server.target]
        url = "http://127.0.0.1:9/hooks"
        code, out, err = await run_cli("webhooks", "create", url, "--terminal", *target)
        assert code == 0, err
        webhook_id, secret = out.split()
        assert webhook_id.startswith("wh_") and secret.startswith("whsec_")

        code, out, err = await run_cli("webhooks", "list", *target)
        assert (code, out.split()) == (0, [webhook_id, "terminal", url, "ok"]), err

        code, out, err = await run_cli("webhooks", "rotate", webhook_id, *target)
        assert code == 0 and out.strip().startswith("whsec_") and out.strip() != secret, err

        # Replaying the endpoint's deliveries since a time: none yet (no job ran); a time without its
        # offset, or neither a job nor --since, is refused before any call.
        code, out, err = await run_cli(
            "webhooks", "replay", webhook_id, "--since", "2026-01-01T00:00Z", *target
        )
        assert (code, out.strip()) == (0, "replaying 0 events"), err
        code, out, err = await run_cli(
            "webhooks", "replay", webhook_id, "--since", "2026-01-01T00:00", *target
        )
        assert code == 2 and "has no offset" in err, err
        code, out, err = await run_cli("webhooks", "replay", webhook_id, *target)
        assert code == 2 and "a job id or --since" in out + err, (out, err)

        code, out, err = await run_cli("webhooks", "delete", webhook_id, *target)
        assert (code, out.strip()) == (0, f"deleted: {webhook_id}"), err
        code, out, err = await run_cli("webhooks", "list", *target)
        assert (code, out) == (0, ""), err

        # A refused address: the catalogue code and its remediation, no traceback.
        code, out, err = await run_cli("webhooks", "create", "http://169.254.169.254/", *target)
        assert code != 0 and out == ""
        assert "E091-WEBHOOK_ADDRESS_NOT_ALLOWED" in err and "Traceback" not in err
    finally:
        await server.stop(grace=0.5)
