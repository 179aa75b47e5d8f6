"""The ``reelcast`` command line: every command, its flags and their defaults."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path

from reelcast.jobs.labels import LabelSelectorError, parse_label_term
from reelcast.jobs.priorities import PRIORITY_WORDS
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import MUSIC_MOODS, MUSIC_NONE
from reelcast.server.announce import ANNOUNCE_FORMATS
from reelcast.server.logs import LOG_FORMATS, LOG_LEVELS

# The help text of `reelcast --help`.
DESCRIPTION = """The ``reelcast`` command: run the server, the bridge, and act as a gRPC client of
``JobService``.

Every failure prints the error code and its remediation, never a traceback. stdout carries only a command's
result (an id, a path, JSON, one line per listed item); progress, messages and errors go to stderr.
"""

DEFAULT_TARGET = "127.0.0.1:50051"


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("resolution must look like 1280x720") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelcast", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server, the runner and the web bridge")
    serve.add_argument("--data-dir", type=Path, help="where jobs live (default: platform data dir)")
    serve.add_argument("--grpc-listen", default=None, help=f"gRPC address (default {DEFAULT_TARGET})")
    serve.add_argument("--http-listen", default=None, help="bridge address (default 127.0.0.1:8080)")
    serve.add_argument("--no-bridge", action="store_true", help="serve gRPC only")
    _allowed_hosts_argument(serve)
    serve.add_argument("--max-concurrent-jobs", type=int, default=None)
    _tls_arguments(serve)
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication (development only; same as REELCAST_AUTH=off)",
    )

    store_help = "sqlite (default) or nats://HOST:PORT[,HOST:PORT...] (REELCAST_STORE)"
    serve.add_argument("--store", default=None, help=store_help)
    _observability_arguments(serve)
    _announce_argument(serve)
    api = commands.add_parser("server", help="run the gRPC API only; workers run the jobs (needs --store)")
    api.add_argument("--data-dir", type=Path, help="local files (default: platform data dir)")
    api.add_argument("--grpc-listen", default=None, help=f"gRPC address (default {DEFAULT_TARGET})")
    api.add_argument("--store", default=None, help=store_help)
    _tls_arguments(api)
    api.add_argument("--insecure-no-auth", action="store_true", help="serve without authentication")
    _observability_arguments(api)
    _announce_argument(api)
    api.set_defaults(no_bridge=True, api_only=True)
    worker = commands.add_parser("worker", help="run jobs from the shared work queue (needs --store)")
    worker.add_argument("--data-dir", type=Path, help="running jobs' work dirs (default: platform data dir)")
    worker.add_argument("--store", default=None, help=store_help)
    worker.add_argument("--concurrency", type=int, default=None, help="jobs run at once (default 1)")
    _observability_arguments(worker)
    _announce_argument(worker)

    bridge = commands.add_parser("bridge", help="run the SSE/REST bridge alone, against a gRPC server")
    bridge.add_argument("--grpc-target", default=None, help=f"the JobService (default {DEFAULT_TARGET})")
    bridge.add_argument("--http-listen", default=None, help="bridge address (default 127.0.0.1:8080)")
    bridge.add_argument(
        "--processes",
        type=int,
        default=None,
        help="bridge processes sharing the address, one per core (default 1; REELCAST_BRIDGE_PROCESSES)",
    )
    _allowed_hosts_argument(bridge)
    _tls_arguments(bridge)
    # The bridge serves its own /metrics route, so it takes the log flags but no metrics port.
    _log_arguments(bridge)
    _announce_argument(bridge)

    def client(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target", default=os.environ.get("REELCAST_TARGET", DEFAULT_TARGET), help="gRPC server address"
        )
        sub.add_argument("--correlation-id", default=None, help="sent as x-correlation-id")
        sub.add_argument(
            "--api-key",
            default=os.environ.get("REELCAST_API_KEY", ""),
            help="API key (default: REELCAST_API_KEY); create one with `reelcast keys create`",
        )
        sub.add_argument(
            "--tls-ca",
            type=Path,
            default=os.environ.get("REELCAST_TLS_CA") or None,
            help="connect with TLS, trusting this PEM certificate (default: REELCAST_TLS_CA)",
        )

    jobs = commands.add_parser("jobs", help="create, inspect, watch and cancel jobs").add_subparsers(
        dest="jobs_command", required=True
    )
    create = jobs.add_parser("create", help="create a job")
    client(create)
    _spec_arguments(create)
    create.add_argument("--request-id", default="", help="idempotency key")
    create.add_argument("--watch", action="store_true", help="follow the job until it ends")
    create.add_argument(
        "--review", action="store_true", help="stop after the script until `jobs approve` (docs/api.md)"
    )
    get = jobs.add_parser("get", help="print a job as JSON")
    client(get)
    get.add_argument("job_id")
    listing = jobs.add_parser("list", help="list jobs, newest first")
    client(listing)
    listing.add_argument("--status", action="append", default=[], help="queued, running, succeeded...")
    listing.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        type=label_term,
        metavar="KEY=VALUE",
        help="only jobs carrying this label; repeat it: a job must carry every one",
    )
    listing.add_argument("--page-size", type=int, default=20)
    listing.add_argument("--page-token", default="")
    listing.add_argument(
        "--json", action="store_true", help="print the page (jobs and nextPageToken) as JSON"
    )
    watch = jobs.add_parser("watch", help="follow a job's progress live")
    client(watch)
    watch.add_argument("job_id")
    watch.add_argument("--after", type=int, default=0, help="resume after this sequence")
    watch.add_argument("--json", action="store_true", help="print each event as a JSON line")
    cancel = jobs.add_parser("cancel", help="cancel a job")
    client(cancel)
    cancel.add_argument("job_id")
    retry = jobs.add_parser("retry", help="run a failed or cancelled job again from its checkpoints")
    client(retry)
    retry.add_argument("job_id")
    delete = jobs.add_parser("delete", help="delete a job with its outputs and logs (cancelled first)")
    client(delete)
    delete.add_argument("job_id")
    script = jobs.add_parser("script", help="print the scenes of a job awaiting review as JSON")
    client(script)
    script.add_argument("job_id")
    approve = jobs.add_parser("approve", help="approve the script of a job awaiting review; it renders")
    client(approve)
    approve.add_argument("job_id")
    approve.add_argument(
        "--script", type=Path, default=None, help="a JSON list of scenes (as `jobs script` prints) to approve"
    )

    stages = commands.add_parser("stages", help="list the installed stages")
    client(stages)

    media = commands.add_parser(
        "media", help="upload, list and delete your pictures, clips and tracks"
    ).add_subparsers(dest="media_command", required=True)
    upload = media.add_parser("upload", help="upload a file and print its media id")
    client(upload)
    upload.add_argument("file", type=Path, help="a PNG/JPEG picture, a short clip or an audio track")
    media_list = media.add_parser("list", help="list your media, newest first")
    client(media_list)
    media_list.add_argument("--page-size", type=int, default=50)
    media_list.add_argument("--page-token", default="")
    media_list.add_argument("--json", action="store_true", help="print the page as JSON")
    media_delete = media.add_parser("delete", help="delete one media file")
    client(media_delete)
    media_delete.add_argument("media_id")

    webhooks = commands.add_parser(
        "webhooks", help="register, list, rotate, replay and delete your webhook endpoints (docs/webhooks.md)"
    ).add_subparsers(dest="webhooks_command", required=True)
    webhook_create = webhooks.add_parser("create", help="register an endpoint; prints its id and its secret")
    client(webhook_create)
    webhook_create.add_argument("url", help="an absolute http(s) URL")
    webhook_create.add_argument("--terminal", action="store_true", help="only each job's last event")
    webhook_create.add_argument(
        "--status",
        action="append",
        help="only job events with this status (queued, running, ...); repeatable",
    )
    webhook_create.add_argument(
        "--label", action="append", help="only jobs with this KEY=VALUE label; repeatable"
    )
    webhook_list = webhooks.add_parser("list", help="list your endpoints (FAILING ones say why)")
    client(webhook_list)
    webhook_list.add_argument("--page-size", type=int, default=50)
    webhook_list.add_argument("--page-token", default="")
    webhook_list.add_argument("--json", action="store_true", help="print the page as JSON")
    for name, description in (("delete", "remove an endpoint"), ("rotate", "print a new secret")):
        webhook_by_id = webhooks.add_parser(name, help=description)
        client(webhook_by_id)
        webhook_by_id.add_argument("webhook_id")
    webhook_replay = webhooks.add_parser(
        "replay", help="redeliver a job's events from a sequence, or the endpoint's deliveries --since a time"
    )
    client(webhook_replay)
    webhook_replay.add_argument("webhook_id")
    webhook_replay.add_argument("job_id", nargs="?", help="the job to replay (not with --since)")
    webhook_replay.add_argument("--from-sequence", type=int, default=1)
    webhook_replay.add_argument(
        "--since",
        type=aware_time,
        help="an ISO 8601 time with its offset (2026-12-02T10:00:00Z): every delivery since then",
    )

    gc = commands.add_parser("gc", help="delete finished jobs past their retention period now")
    gc.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
    gc.add_argument(
        "--older-than", type=float, default=None, help="seconds since a job finished (default: retention)"
    )

    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys_create = keys.add_parser("create", help="create a key and print it (shown only this once)")
    keys_create.add_argument("--user", required=True, help="the user the key acts as")
    keys_create.add_argument("--admin", action="store_true", help="the key sees every user's jobs")
    keys_list = keys.add_parser("list", help="list keys (ids and users; secrets are not stored)")
    keys_revoke = keys.add_parser(
        "revoke", help="revoke a key by its id; its open streams end within seconds"
    )
    keys_revoke.add_argument("key_id", help="the 8-digit id that `keys list` shows")
    for sub in (keys_create, keys_list, keys_revoke):
        sub.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
        sub.add_argument("--store", default=None, help=store_help)

    render = commands.add_parser("render", help="render one video end to end on the embedded store")
    _spec_arguments(render)
    render.add_argument("-o", "--output", type=Path, required=True, help="where to write the MP4")
    render.add_argument("--data-dir", type=Path, help="embedded store location (default: platform data dir)")
    render.add_argument(
        "--review",
        action="store_true",
        help="edit the script before it is rendered: it is written to OUTPUT.script.json (as `jobs script`"
        " prints it), $VISUAL or $EDITOR opens it (without one, in a terminal, press Enter once it is"
        " edited), and the saved file is what the video says; an editor that fails or a file without"
        " scenes renders nothing",
    )
    return parser


# `--captions` alone means words, the default style (before issue 16 it was an on/off switch).
CAPTION_CHOICES = ("off", "sentences", "words")


def aware_time(text: str) -> datetime:
    """An ISO 8601 time that names its offset (``Z`` or ``+02:00``): a time without one would mean a
    different instant on the server's clock than on the caller's."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add Z or +HH:MM")
    return parsed


def label_term(text: str) -> str:
    """One ``--label KEY=VALUE``, checked against the label bounds (reelcast.jobs.labels) and normalized."""
    try:
        key, value = parse_label_term(text)
    except LabelSelectorError as malformed:
        raise argparse.ArgumentTypeError(str(malformed)) from None
    return f"{key}={value}"


def _spec_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--topic", required=True)
    sub.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        type=label_term,
        metavar="KEY=VALUE",
        help="a label to find the job by (`jobs list --label`); repeat it, at most 16",
    )
    sub.add_argument(
        "--priority",
        choices=PRIORITY_WORDS,
        default="normal",
        help="among your own waiting jobs: high first, low last (other users' jobs are scheduled fairly)",
    )
    sub.add_argument("--audience", default="")
    sub.add_argument("--goal", default="")
    sub.add_argument("--tone", default="")
    sub.add_argument(
        "--language", default="", help="BCP-47 tag of the narration: en (default), fr, de, es, ..."
    )
    sub.add_argument(
        "--key-point",
        dest="key_points",
        action="append",
        default=[],
        metavar="TEXT",
        help="a fact the video must say; repeat it, in the order the video says them",
    )
    sub.add_argument(
        "--script",
        type=Path,
        default=None,
        metavar="FILE",
        help="speak this script instead of writing one: a JSON list of scenes ({title, narration, caption,"
        " visualHint}, narration required) or plain text, one scene per paragraph",
    )
    sub.add_argument("--duration", type=float, default=0.0, help="target seconds")
    sub.add_argument("--resolution", type=_resolution, default=None, help="WIDTHxHEIGHT")
    sub.add_argument("--fps", type=int, default=0)
    sub.add_argument(
        "--motion",
        choices=tuple(MOTION_CHOICES),
        default=None,
        help="ken-burns (the default: a slow push or pan per scene) or none (still cards)",
    )
    sub.add_argument(
        "--transition",
        choices=tuple(TRANSITION_CHOICES),
        default=None,
        help="crossfade (the default), slide, wipe, fade-black, or none (hard cuts)",
    )
    sub.add_argument(
        "--voice", default="", help="a voice key, for example en-us-joe (Piper) or en-us, fr-fr (espeak-ng)"
    )
    sub.add_argument(
        "--music",
        choices=(*MUSIC_MOODS, MUSIC_NONE),
        default="",
        help="the music bed's mood (by default the --tone chooses), or none for no music",
    )
    sub.add_argument(
        "--captions",
        nargs="?",
        choices=CAPTION_CHOICES,
        const="words",
        default="off",
        help="off (default), sentences, or words (a few words at a time, each lit as it is spoken; what"
        " a bare --captions means)",
    )


MOTION_CHOICES = {"none": job_pb2.MOTION_NONE, "ken-burns": job_pb2.MOTION_KEN_BURNS}
TRANSITION_CHOICES = {
    "none": job_pb2.TRANSITION_NONE,
    "crossfade": job_pb2.TRANSITION_CROSSFADE,
    "slide": job_pb2.TRANSITION_SLIDE,
    "wipe": job_pb2.TRANSITION_WIPE,
    "fade-black": job_pb2.TRANSITION_FADE_BLACK,
}


def _observability_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus /metrics here; port 0 picks one (REELCAST_METRICS_LISTEN; default off)",
    )
    _log_arguments(sub)


def _log_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="log lines on stderr: json (default) or human (REELCAST_LOG_FORMAT)",
    )
    sub.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="lowest level logged (REELCAST_LOG_LEVEL; default INFO)",
    )


def _announce_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--announce",
        choices=ANNOUNCE_FORMATS,
        default="human",
        help="how stdout says the process is ready and where it listens: human lines (default) or json,"
        " one object per event (docs/operations.md#announcements)",
    )


def _tls_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate for gRPC and HTTP")
    sub.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")


def _allowed_hosts_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--allowed-hosts",
        default=None,
        metavar="NAMES",
        help="Host names the bridge answers besides localhost and its listen address, comma separated;"
        " .example.com for subdomains, * for any (REELCAST_ALLOWED_HOSTS)",
    )
