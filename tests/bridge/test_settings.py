"""The bridge's own settings: each ``REELCAST_*`` variable sets its field, a value that cannot be used is
refused with the variable's name, and docs/configuration.md lists every variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelcast.bridge.settings import BridgeSettings

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_each_bridge_variable_sets_its_field_and_the_rest_keep_their_defaults() -> None:
    environ = {
        "REELCAST_SSE_SEND_TIMEOUT": "2.5",
        "REELCAST_AUTH": "off",
        "REELCAST_MAX_SSE_PER_USER": "3",
        "REELCAST_MAX_BODY_BYTES": "1000",
        "REELCAST_SESSION_TTL": "60",
        "REELCAST_CORS_ORIGINS": "https://a.example, https://b.example",
        "REELCAST_ALLOWED_HOSTS": "reelcast.example,.example.org",
        "REELCAST_MAX_HEADER_BYTES": "4096",
        "REELCAST_REQUEST_TIMEOUT": "7",
        "REELCAST_TLS_CERT": "/etc/reelcast/cert.pem",
        "REELCAST_TLS_KEY": "/etc/reelcast/key.pem",
        "REELCAST_BRIDGE_METRICS": "off",
        "REELCAST_UPSTREAM_DEADLINE": "4",
        "REELCAST_MEDIA_MAX_BYTES": "5000",
        "REELCAST_BRIDGE_PROCESSES": "3",
    }
    assert set(environ) == set(BridgeSettings.variables().values())

    settings = BridgeSettings.from_env(environ)

    assert settings == BridgeSettings(
        send_timeout_seconds=2.5,
        upstream_deadline_seconds=4.0,
        auth_required=False,
        max_sse_connections_per_user=3,
        max_body_bytes=1000,
        session_ttl_seconds=60.0,
        cors_origins=("https://a.example", "https://b.example"),
        allowed_hosts=("reelcast.example", ".example.org"),
        max_header_bytes=4096,
        request_timeout_seconds=7.0,
        tls_cert_file=Path("/etc/reelcast/cert.pem"),
        tls_key_file=Path("/etc/reelcast/key.pem"),
        metrics_route=False,
        max_upload_bytes=5000,
        processes=3,
    )
    assert settings.tls
    assert BridgeSettings.from_env({}) == BridgeSettings()
    assert BridgeSettings().auth_required  # secure by default


@pytest.mark.parametrize(
    ("variable", "value"),
    [("REELCAST_AUTH", "maybe"), ("REELCAST_MAX_BODY_BYTES", "lots"), ("REELCAST_REQUEST_TIMEOUT", "soon")],
)
def test_an_unusable_bridge_variable_is_refused_with_its_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as refused:
        BridgeSettings.from_env({variable: value})
    assert repr(value) in str(refused.value)


def test_every_bridge_variable_is_listed_in_docs_configuration() -> None:
    documented = CONFIGURATION_DOC.read_text()
    missing = [v for v in BridgeSettings.variables().values() if f"`{v}`" not in documented]
    assert missing == []
