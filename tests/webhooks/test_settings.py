"""The webhook settings: each ``REELCAST_WEBHOOK_*`` variable sets its field, a bad value is refused with
the variable's name, and docs/configuration.md lists every one."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reelcast.jobs.settings_fields import variables
from reelcast.server.webhooks.settings import WebhookSettings

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_webhook_variables_set_their_fields() -> None:
    settings = WebhookSettings.from_environ(
        {
            "REELCAST_WEBHOOK_ALLOW_PRIVATE": "1",
            "REELCAST_WEBHOOK_ALLOWED_CIDRS": "10.20.0.0/16, fd00:1::/64",
            "REELCAST_WEBHOOK_MAX_ATTEMPTS": "4",
            "REELCAST_WEBHOOK_RETRY_BASE": "0.5",
        }
    )
    assert settings.allow_private
    assert settings.allowed_cidrs == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00:1::/64"),
    )
    assert (settings.max_attempts, settings.retry_base_seconds) == (4, 0.5)
    assert not WebhookSettings.from_environ({}).allow_private  # private addresses are refused by default


def test_a_bad_cidr_list_is_refused_with_its_variable() -> None:
    with pytest.raises(ValueError, match="REELCAST_WEBHOOK_ALLOWED_CIDRS"):
        WebhookSettings.from_environ({"REELCAST_WEBHOOK_ALLOWED_CIDRS": "10.0.0.0/33"})


def test_every_webhook_variable_is_listed_in_docs_configuration() -> None:
    documented = CONFIGURATION_DOC.read_text()
    missing = [
        variable for variable in variables(WebhookSettings).values() if f"`{variable}`" not in documented
    ]
    assert missing == []
