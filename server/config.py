"""The job server's config object: every tunable of the server and its workers, from flags or ``REELCAST_*``
variables. The bridge has settings of its own (bridge/settings.py)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from reelcast.jobs.settings_fields import (
    auth_mode,
    from_environment,
    integer,
    names,
    number,
    path,
    setting,
    text,
)
from reelcast.jobs.settings_fields import variables as setting_variables
from reelcast.plugins.settings import build_stage_settings
from reelcast.plugins.stage import Stage
from reelcast.server.logs import check_log_format, check_log_level

log = logging.getLogger(__name__)
APP_NAME = "reelcast"
# Owner only: the data dir holds every brief, event log, video and key hash (docs/security.md).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
# Data dirs already warned about in this process: the warning is logged once, not at every open.
_warned_shared_dirs: set[Path] = set()


# Settings keywords that were built-in stage knobs, and the stages whose settings they now fill in.
LEGACY_STAGE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ffmpeg_path": ("render", "postprocess"),
    "ffmpeg_extra_args": ("render",),
    "render_timeout_seconds": ("render",),
    "ffmpeg_log_max_bytes": ("render",),
    "x264_preset": ("render",),
}


def default_data_dir() -> Path:
    """``REELCAST_DATA_DIR``, else the platform's user data dir (``~/.local/share/reelcast`` on Linux)."""
    configured = os.environ.get("REELCAST_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_data_dir(APP_NAME))


def prepare_data_dir(path: Path) -> None:
    """Creates the data dir owner-only (0700). An existing one is left as it is, with one warning per process
    when other users may read it (Jupyter's rule for its runtime dir): the operator may share it on purpose,
    and reelcast does not change permissions it did not set."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
    except FileExistsError:
        _warn_if_shared(path)
        return
    path.chmod(PRIVATE_DIR_MODE)  # mkdir's mode went through the umask


def _warn_if_shared(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    resolved = path.resolve()
    if mode & 0o077 and resolved not in _warned_shared_dirs:
        _warned_shared_dirs.add(resolved)
        log.warning(
            "data dir %s has mode %o: other local users may read its briefs, event logs, videos and key "
            "hashes; make it private with `chmod 700 %s` (docs/security.md)",
            path,
            mode,
            path,
        )


def use_private_umask() -> int:
    """Makes every file and dir this process (and its subprocesses: ffmpeg) creates from now on owner-only,
    and returns the previous umask. For reelcast's own commands, which write into the data dir; a program
    that embeds the server keeps its umask, and the data dir's 0700 keeps others out of what it writes."""
    return os.umask(PRIVATE_UMASK)


def weights_by_user(text: str) -> dict[str, float]:
    """``REELCAST_USER_WEIGHTS``: ``alice=2,bob=0.5``, a positive weight per user id (the rest weigh 1):
    a user of weight 2 gets twice the starts of a user of weight 1 while both wait."""
    weights: dict[str, float] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        user, separator, value = part.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = 0.0
        if not separator or not user.strip() or not weight > 0:
            raise ValueError(f"must be user=weight pairs with positive weights, got {part!r}")
        weights[user.strip()] = weight
    return weights


def auth_required_from_env() -> bool:
    """``REELCAST_AUTH``: ``required`` (the default) or ``off``. A Settings built in code follows it too, so
    it is secure by default, and a typo can never switch authentication off."""
    raw = os.environ.get("REELCAST_AUTH", "").strip()
    try:
        return auth_mode(raw or "required")
    except ValueError as invalid:
        raise ValueError(f"REELCAST_AUTH {invalid}, got {raw!r}") from None


@dataclass
class Settings:
    """Configuration of one process. Construct with :meth:`from_env` and override fields from CLI flags."""

    data_dir: Path = setting("REELCAST_DATA_DIR", path, default_factory=default_data_dir)
    grpc_listen: str = setting("REELCAST_GRPC_LISTEN", text, default="127.0.0.1:50051")
    # How many jobs run at once; the rest wait as Queued.
    max_concurrent_jobs: int = setting("REELCAST_MAX_CONCURRENT_JOBS", integer, default=1)
    # Fair scheduling (docs/operations.md): a user's share of the starts while several wait, and the cap on
    # one user's running jobs across the deployment (0: none, so an idle slot never stays idle).
    user_weights: dict[str, float] = setting("REELCAST_USER_WEIGHTS", weights_by_user, default_factory=dict)
    max_running_jobs_per_user: int = setting("REELCAST_MAX_RUNNING_JOBS_PER_USER", integer, default=0)
    # Progress events are persisted; ticks closer than this are merged (the latest wins) unless they finish
    # a stage, so a chatty stage cannot flood the log.
    progress_min_interval_seconds: float = setting("REELCAST_PROGRESS_INTERVAL", number, default=0.2)
    # A waiting job's queue position (execution/queue_positions.py) is written at most once per this long;
    # on NATS every runner also recomputes the positions this often, since other processes change the queue.
    queue_position_interval_seconds: float = setting("REELCAST_QUEUE_POSITION_INTERVAL", number, default=1.0)
    disabled_plugins: tuple[str, ...] = setting("REELCAST_DISABLED_PLUGINS", names, default=())
    # A stage that reports no progress for this long is stopped and fails with E305.
    stall_timeout_seconds: float = setting("REELCAST_STALL_TIMEOUT", number, default=90.0)
    # A job interrupted (by restarts or lost workers) more often than this fails with E701.
    max_attempts: int = setting("REELCAST_MAX_ATTEMPTS", integer, default=3)
    # Finished jobs (rows, events, work dirs, outputs, ffmpeg logs) are deleted this long after they end.
    retention_seconds: float = setting("REELCAST_RETENTION_SECONDS", number, default=7 * 24 * 3600.0)
    gc_interval_seconds: float = setting("REELCAST_GC_INTERVAL", number, default=3600.0)
    # A job that waits for its script's review (JobSpec.review_script) this long fails with E703.
    review_timeout_seconds: float = setting("REELCAST_REVIEW_TIMEOUT", number, default=24 * 3600.0)
    # Below this much free space in the data dir, the next stage fails with E601 instead of filling the disk.
    min_free_disk_bytes: int = setting("REELCAST_MIN_FREE_DISK_BYTES", integer, default=256 * 1024 * 1024)
    # On SIGTERM, running jobs get this long to finish before they are stopped (they resume on restart).
    shutdown_grace_seconds: float = setting("REELCAST_SHUTDOWN_GRACE", number, default=10.0)

    # -- storage backend (docs/operations.md) ------------------------------------------------------------
    # "" or "sqlite": the embedded store under data_dir; nats://HOST:PORT[,HOST:PORT...]: NATS JetStream.
    store_url: str = setting("REELCAST_STORE", text, default="")
    # JetStream replicas of every stream and bucket: 1 on a laptop, 3 in production.
    nats_replicas: int = setting("REELCAST_NATS_REPLICAS", integer, default=1)
    # A worker's claim on a job lapses after this long without a heartbeat (it heartbeats every third of it).
    nats_ack_wait_seconds: float = setting("REELCAST_NATS_ACK_WAIT", number, default=30.0)
    # Whether this process runs jobs (`reelcast server` serves the API, `reelcast worker` only runs jobs).
    embedded_worker: bool = True

    # -- security (docs/security.md) ---------------------------------------------------------------------
    # Every RPC except health and reflection needs an API key. Off only by explicit choice
    # (REELCAST_AUTH=off); a dataclass built in code follows the environment, so it is secure by default.
    auth_required: bool = setting("REELCAST_AUTH", auth_mode, default_factory=auth_required_from_env)
    # Open streams re-check their key this often, so a revoked key's streams end within about this long.
    key_recheck_seconds: float = setting("REELCAST_KEY_RECHECK", number, default=1.0)
    # Signed per-job stream tokens (``?token=``) can be used to open a stream for this long.
    stream_token_ttl_seconds: float = setting("REELCAST_STREAM_TOKEN_TTL", number, default=600.0)
    # Job creation per user: a token bucket refilled at this rate (jobs per minute) holding ``burst``.
    job_create_rate_per_minute: float = setting("REELCAST_JOB_CREATE_RATE", number, default=30.0)
    job_create_burst: int = setting("REELCAST_JOB_CREATE_BURST", integer, default=10)
    # Queued plus running jobs one user may have.
    max_active_jobs_per_user: int = setting("REELCAST_MAX_ACTIVE_JOBS_PER_USER", integer, default=20)
    # Per-user quotas on resources (server/rpc/quotas.py, E061/E062); 0 turns one off. They hold for the
    # anonymous owner too when authentication is off, as the media quota does. Render time: the video seconds
    # of one owner's unfinished jobs, the new one included. An hour is six of the longest jobs (600 s), or
    # all 20 active jobs at 180 s; at 4K 60 fps a 600 s job renders for about 37 minutes, so one user holds
    # a worker for at most about 4 hours instead of the 12 that 20 x 600 s would take.
    max_queued_render_seconds_per_user: float = setting(
        "REELCAST_MAX_QUEUED_RENDER_SECONDS_PER_USER", number, default=3600.0
    )
    # Stored bytes: finished videos (JobOutput.size_bytes) plus uploaded media. 10 GiB keeps the 500 MiB of
    # media and some 270 minutes of 1080p video at about 5 Mbit/s; retention frees the oldest on its own.
    max_stored_bytes_per_user: int = setting(
        "REELCAST_MAX_STORED_BYTES_PER_USER", integer, default=10 * 1024 * 1024 * 1024
    )
    # Largest gRPC message the server accepts (CreateJob is the largest request).
    grpc_max_message_bytes: int = setting("REELCAST_GRPC_MAX_MESSAGE_BYTES", integer, default=1024 * 1024)
    # Open WatchJob streams per user, per server process. Larger than the SSE allowance: a bridge holds one
    # upstream stream per job it relays (shared by all of that user's browsers), up to 100 on one /api/events.
    max_grpc_streams_per_user: int = setting("REELCAST_MAX_GRPC_STREAMS_PER_USER", integer, default=256)
    # How long a browser session lasts (the bridge's own settings, bridge/settings.py, hold its HTTP limits).
    session_ttl_seconds: float = setting("REELCAST_SESSION_TTL", number, default=12 * 3600.0)
    # Browser sessions one user may hold; opening one more ends that user's oldest (server/security/keys.py).
    max_sessions_per_user: int = setting("REELCAST_MAX_SESSIONS_PER_USER", integer, default=100)
    # TLS: one certificate and key (PEM) for gRPC and HTTP alike; both empty means plaintext.
    tls_cert_file: Path | None = setting("REELCAST_TLS_CERT", path, default=None)
    tls_key_file: Path | None = setting("REELCAST_TLS_KEY", path, default=None)

    # -- uploaded media (docs/api.md, Media; docs/configuration.md) ----------------------------------------
    # One upload's size, as sent, and each user's total of stored bytes and files.
    media_max_bytes: int = setting("REELCAST_MEDIA_MAX_BYTES", integer, default=50 * 1024 * 1024)
    media_quota_bytes: int = setting("REELCAST_MEDIA_QUOTA_BYTES", integer, default=500 * 1024 * 1024)
    media_quota_count: int = setting("REELCAST_MEDIA_QUOTA_COUNT", integer, default=100)
    # Pictures and clips: pixels in all and on one side, read from the header before anything is decoded.
    media_max_pixels: int = setting("REELCAST_MEDIA_MAX_PIXELS", integer, default=40_000_000)
    media_max_side: int = setting("REELCAST_MEDIA_MAX_SIDE", integer, default=8192)
    media_max_clip_seconds: float = setting("REELCAST_MEDIA_MAX_CLIP_SECONDS", number, default=60.0)
    media_max_audio_seconds: float = setting("REELCAST_MEDIA_MAX_AUDIO_SECONDS", number, default=600.0)

    # -- observability (docs/observability.md) -----------------------------------------------------------
    # HOST:PORT of a Prometheus /metrics endpoint of this process; "" (the default) serves none. Port 0
    # picks a free port (the process prints the address it got).
    metrics_listen: str = setting("REELCAST_METRICS_LISTEN", text, default="")
    # How often job counts by status and the queue depth are sampled for the metrics.
    metrics_interval_seconds: float = setting("REELCAST_METRICS_INTERVAL", number, default=5.0)
    # "json" (one JSON object per line) or "human", on stderr; and the lowest level logged.
    log_format: str = setting("REELCAST_LOG_FORMAT", check_log_format, default="json")
    log_level: str = setting("REELCAST_LOG_LEVEL", check_log_level, default="INFO")

    # -- stages (docs/plugins.md, plugin configuration) ----------------------------------------------------
    # Each stage's own settings given in code, by stage name: {"render": {"x264_preset": "ultrafast"}}.
    # They win over the environment. The stages declare their knobs and defaults (Stage.settings).
    stage_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The REELCAST_* variables read by from_env, from which the server fills in each stage's settings
    # (REELCAST_PLUGIN_<STAGE>_<KEY>, and the built-ins' older names); a stage never reads the environment.
    environment: dict[str, str] = field(default_factory=dict)
    # The built-ins' knobs that were Settings fields, still accepted as keywords (Settings(x264_preset=...)).
    ffmpeg_path: InitVar[str | None] = None
    ffmpeg_extra_args: InitVar[tuple[str, ...] | None] = None
    render_timeout_seconds: InitVar[float | None] = None
    ffmpeg_log_max_bytes: InitVar[int | None] = None
    x264_preset: InitVar[str | None] = None

    def __post_init__(
        self,
        ffmpeg_path: str | None,
        ffmpeg_extra_args: tuple[str, ...] | None,
        render_timeout_seconds: float | None,
        ffmpeg_log_max_bytes: int | None,
        x264_preset: str | None,
    ) -> None:
        legacy = {
            "ffmpeg_path": ffmpeg_path,
            "ffmpeg_extra_args": ffmpeg_extra_args,
            "render_timeout_seconds": render_timeout_seconds,
            "ffmpeg_log_max_bytes": ffmpeg_log_max_bytes,
            "x264_preset": x264_preset,
        }
        for keyword, value in legacy.items():
            if value is None:
                continue
            for stage in LEGACY_STAGE_KEYWORDS[keyword]:
                self.stage_settings.setdefault(stage, {}).setdefault(keyword, value)

    def settings_of_stage(self, stage: Stage, installed: Iterable[str] = ()) -> Any:
        """The stage's own settings object (see reelcast.plugins.settings); ``installed`` are the other
        stage names, which tell whose ``REELCAST_PLUGIN_*`` variable is whose."""
        return build_stage_settings(
            stage.name,
            stage.settings,
            self.environment,
            self.stage_settings.get(stage.name, {}),
            other_stages=installed,
        )

    @property
    def espeak_data_path(self) -> str | None:
        """The voice stage's espeak-ng data dir, for the bridge's voice list until it asks the server."""
        from reelcast.plugins.builtin.voice import VoiceSettings

        voice = Stage(
            name="voice", title="Voice", weight=1, order=1, run=lambda _ctx: None, settings=VoiceSettings
        )
        path: str | None = self.settings_of_stage(voice).espeak_data_path
        return path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The defaults, with each field that has a variable set (and not blank) taken from it; ValueError
        names a variable whose value cannot be used."""
        return cls(
            **from_environment(cls, environ),
            environment={name: value for name, value in environ.items() if name.startswith("REELCAST_")},
        )

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name → the variable that sets it, for every field that has one (docs/configuration.md)."""
        return setting_variables(cls)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "reelcast.db"

    @property
    def stream_token_secret_path(self) -> Path:
        return self.data_dir / "secrets" / "stream-token.key"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def logs_dir(self) -> Path:
        """The log root a stage gets as ``ctx.log_dir``."""
        return self.data_dir / "Logs"

    @property
    def ffmpeg_logs_dir(self) -> Path:
        return self.logs_dir / "ffmpeg"

    @property
    def media_database_path(self) -> Path:
        return self.data_dir / "media.db"

    @property
    def media_dir(self) -> Path:
        """The embedded backend's uploaded files."""
        return self.data_dir / "media"

    @property
    def media_cache_dir(self) -> Path:
        """A worker's copies of uploaded files fetched from a shared store (NATS)."""
        return self.data_dir / "media-cache"

    @property
    def media_incoming_dir(self) -> Path:
        """Uploads while they arrive and are checked; nothing stays here after the call."""
        return self.data_dir / "media-incoming"

    def work_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id
