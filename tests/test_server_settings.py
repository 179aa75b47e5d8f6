"""The server's settings: each ``REELCAST_*`` variable sets its field (the default written once, on the
field), a value that cannot be used is refused with the variable's name, and docs/configuration.md lists
every variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelcast.server.config import Settings

CONFIGURATION_DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

ENVIRON = {
    "REELCAST_DATA_DIR": "/srv/reelcast",
    "REELCAST_GRPC_LISTEN": "0.0.0.0:6000",
    "REELCAST_MAX_CONCURRENT_JOBS": "4",
    "REELCAST_USER_WEIGHTS": "alice=2,bob=0.5",
    "REELCAST_MAX_RUNNING_JOBS_PER_USER": "3",
    "REELCAST_PROGRESS_INTERVAL": "0.5",
    "REELCAST_QUEUE_POSITION_INTERVAL": "2.5",
    "REELCAST_DISABLED_PLUGINS": "a, b",
    "REELCAST_STALL_TIMEOUT": "12",
    "REELCAST_MAX_ATTEMPTS": "5",
    "REELCAST_RETENTION_SECONDS": "60",
    "REELCAST_GC_INTERVAL": "30",
    "REELCAST_REVIEW_TIMEOUT": "90",
    "REELCAST_MIN_FREE_DISK_BYTES": "1024",
    "REELCAST_SHUTDOWN_GRACE": "3",
    "REELCAST_STORE": "nats://127.0.0.1:4222",
    "REELCAST_NATS_REPLICAS": "3",
    "REELCAST_NATS_ACK_WAIT": "9",
    "REELCAST_AUTH": "off",
    "REELCAST_KEY_RECHECK": "2",
    "REELCAST_STREAM_TOKEN_TTL": "20",
    "REELCAST_JOB_CREATE_RATE": "6",
    "REELCAST_JOB_CREATE_BURST": "2",
    "REELCAST_MAX_ACTIVE_JOBS_PER_USER": "7",
    "REELCAST_MAX_QUEUED_RENDER_SECONDS_PER_USER": "120.5",
    "REELCAST_MAX_STORED_BYTES_PER_USER": "65536",
    "REELCAST_GRPC_MAX_MESSAGE_BYTES": "2048",
    "REELCAST_MAX_GRPC_STREAMS_PER_USER": "8",
    "REELCAST_SESSION_TTL": "90",
    "REELCAST_MAX_SESSIONS_PER_USER": "9",
    "REELCAST_TLS_CERT": "/etc/reelcast/cert.pem",
    "REELCAST_TLS_KEY": "/etc/reelcast/key.pem",
    "REELCAST_METRICS_LISTEN": "127.0.0.1:0",
    "REELCAST_METRICS_INTERVAL": "1.5",
    "REELCAST_LOG_FORMAT": "Human",
    "REELCAST_LOG_LEVEL": "debug",
    "REELCAST_MEDIA_MAX_BYTES": "4000",
    "REELCAST_MEDIA_QUOTA_BYTES": "8000",
    "REELCAST_MEDIA_QUOTA_COUNT": "4",
    "REELCAST_MEDIA_MAX_PIXELS": "1000000",
    "REELCAST_MEDIA_MAX_SIDE": "1000",
    "REELCAST_MEDIA_MAX_CLIP_SECONDS": "5",
    "REELCAST_MEDIA_MAX_AUDIO_SECONDS": "50",
}


def test_each_server_variable_sets_its_field() -> None:
    assert set(ENVIRON) == set(Settings.variables().values())

    settings = Settings.from_env(ENVIRON)

    assert settings == Settings(
        data_dir=Path("/srv/reelcast"),
        grpc_listen="0.0.0.0:6000",
        max_concurrent_jobs=4,
        user_weights={"alice": 2.0, "bob": 0.5},
        max_running_jobs_per_user=3,
        progress_min_interval_seconds=0.5,
        queue_position_interval_seconds=2.5,
        disabled_plugins=("a", "b"),
        stall_timeout_seconds=12.0,
        max_attempts=5,
        retention_seconds=60.0,
        gc_interval_seconds=30.0,
        review_timeout_seconds=90.0,
        min_free_disk_bytes=1024,
        shutdown_grace_seconds=3.0,
        store_url="nats://127.0.0.1:4222",
        nats_replicas=3,
        nats_ack_wait_seconds=9.0,
        auth_required=False,
        key_recheck_seconds=2.0,
        stream_token_ttl_seconds=20.0,
        job_create_rate_per_minute=6.0,
        job_create_burst=2,
        max_active_jobs_per_user=7,
        max_queued_render_seconds_per_user=120.5,
        max_stored_bytes_per_user=65536,
        grpc_max_message_bytes=2048,
        max_grpc_streams_per_user=8,
        session_ttl_seconds=90.0,
        max_sessions_per_user=9,
        tls_cert_file=Path("/etc/reelcast/cert.pem"),
        tls_key_file=Path("/etc/reelcast/key.pem"),
        metrics_listen="127.0.0.1:0",
        metrics_interval_seconds=1.5,
        log_format="human",
        log_level="DEBUG",
        media_max_bytes=4000,
        media_quota_bytes=8000,
        media_quota_count=4,
        media_max_pixels=1_000_000,
        media_max_side=1000,
        media_max_clip_seconds=5.0,
        media_max_audio_seconds=50.0,
        environment=ENVIRON,
    )


def test_without_variables_every_field_keeps_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENVIRON:
        monkeypatch.delenv(variable, raising=False)
    assert Settings.from_env({}) == Settings()
    assert Settings().auth_required  # secure by default


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REELCAST_AUTH", "maybe"),
        ("REELCAST_MAX_CONCURRENT_JOBS", "many"),
        ("REELCAST_STALL_TIMEOUT", "soon"),
        ("REELCAST_LOG_FORMAT", "xml"),
    ],
)
def test_an_unusable_server_variable_is_refused_with_its_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as refused:
        Settings.from_env({variable: value})
    assert repr(value) in str(refused.value)


def test_every_server_variable_is_listed_in_docs_configuration() -> None:
    documented = CONFIGURATION_DOC.read_text()
    missing = [v for v in Settings.variables().values() if f"`{v}`" not in documented]
    assert missing == []
