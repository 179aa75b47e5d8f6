"""The client commands, ``reelcast jobs ...`` and ``reelcast stages``: gRPC calls to ``JobService``."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import json_format
from rich.markup import escape

from reelcast.cli.output import console, print_json, print_result, report_rpc_error
from reelcast.cli.parser import MOTION_CHOICES, TRANSITION_CHOICES
from reelcast.cli.script_file import read_script_file
from reelcast.client import AsyncClient, is_terminal
from reelcast.client import ReelcastError as ClientError
from reelcast.client.spec import scene_messages
from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.labels import LabelSelectorError, parse_label_terms
from reelcast.jobs.priorities import PRIORITIES
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import DEFAULT_DURATION_SECONDS
from reelcast.plugins.builtin.script import write_script


def _status_names(values: Sequence[str]) -> list[job_pb2.JobStatus.ValueType]:
    statuses: list[job_pb2.JobStatus.ValueType] = []
    for value in values:
        name = f"JOB_STATUS_{value.upper()}"
        if name not in job_pb2.JobStatus.keys():  # noqa: SIM118 - EnumTypeWrapper is not a dict
            raise argparse.ArgumentTypeError(f"unknown status {value!r}")
        statuses.append(job_pb2.JobStatus.Value(name))
    return statuses


CAPTION_STYLES = {"sentences": job_pb2.CAPTION_STYLE_SENTENCES, "words": job_pb2.CAPTION_STYLE_WORDS}


def job_spec(args: argparse.Namespace) -> job_pb2.JobSpec:
    """The job spec of a `render`/`jobs create` command line; reads ``--script`` (E350 when it cannot)."""
    spec = job_pb2.JobSpec(
        brief=job_pb2.Brief(
            topic=args.topic,
            audience=args.audience,
            goal=args.goal,
            tone=args.tone,
            language=args.language,
            key_points=args.key_points,
        ),
        plan=job_pb2.Plan(
            target_duration_seconds=args.duration,
            motion=MOTION_CHOICES[args.motion] if args.motion else job_pb2.MOTION_UNSPECIFIED,
            transition=(
                TRANSITION_CHOICES[args.transition] if args.transition else job_pb2.TRANSITION_UNSPECIFIED
            ),
        ),
        voice=job_pb2.VoiceSpec(name=args.voice),
        music=job_pb2.MusicSpec(mood=args.music),
        render=job_pb2.RenderSpec(
            fps=args.fps,
            captions=args.captions != "off",
            caption_style=CAPTION_STYLES.get(args.captions, job_pb2.CAPTION_STYLE_UNSPECIFIED),
        ),
        priority=PRIORITIES[args.priority],
    )
    try:
        spec.labels.update(parse_label_terms(args.labels))
    except LabelSelectorError as malformed:
        raise ReelcastError(errors.INVALID_SPEC, f"--label: {malformed}") from None
    if args.script is not None:
        spec.script.extend(read_script_file(args.script))
    if args.resolution:
        spec.render.width, spec.render.height = args.resolution
    return spec


def hint_brief(spec: job_pb2.JobSpec) -> None:
    """Says on stderr, in one line each, what the built-in writer will make of a brief without a script:
    that key points make a better video, when there are none (the video then only says what it is about);
    that the video runs longer than the target, when the key points clearly need more at the voice's pace
    (the writer speaks every one of them)."""
    if spec.script:
        return
    if not spec.brief.key_points:
        _hint(
            "key points make a better video: add --key-point TEXT for each fact to say, in order"
            " (without them the video only says what it is about)"
        )
        return
    try:
        written = write_script(spec)
    except ReelcastError:
        return  # the server refuses the brief with its own error
    if written.runs_long:
        target = spec.plan.target_duration_seconds or DEFAULT_DURATION_SECONDS
        _hint(
            f"the key points need about {written.estimated_seconds:.0f} s; target {target:.0f} s: the video"
            " will run longer (shorten the key points, or raise --duration)"
        )


def _hint(text: str) -> None:
    console.print(f"hint: {text}", soft_wrap=True, markup=False)


def client_for(args: argparse.Namespace) -> AsyncClient:
    """The client of a `reelcast jobs ...`/`reelcast stages` command, from its --target, --api-key (or
    REELCAST_API_KEY), --tls-ca and --correlation-id."""
    return AsyncClient(
        args.target,
        api_key=getattr(args, "api_key", "") or "",
        root_certificates=getattr(args, "tls_ca", None),
        correlation_id=getattr(args, "correlation_id", None),
    )


async def follow(
    client: AsyncClient, job_id: str, after: int, as_json: bool, *, until_review: bool = False
) -> job_pb2.JobProgress | None:
    """Follows a job to its end and returns its completion event, or None once it has reported on stderr why
    the job did not complete. The watch resumes by itself across dropped connections and server restarts.
    ``until_review`` stops at the job's wait for review instead, and returns that event."""
    from reelcast.cli.progress_display import ProgressDisplay

    # An unknown job gets its error before anything is drawn.
    await client.get_job(job_id)
    last: job_pb2.JobProgress | None = None

    def waits(event: job_pb2.JobProgress) -> bool:
        return until_review and event.job_status == job_pb2.JOB_STATUS_AWAITING_REVIEW

    async with contextlib.aclosing(client.watch_job(job_id, after)) as events:
        if as_json:
            async for event in events:
                print_result(json_format.MessageToJson(event, indent=None))
                last = event
                if waits(event):
                    return last
        else:
            with ProgressDisplay(console) as display:
                async for event in events:
                    display.update(event)
                    last = event
                    if waits(event):
                        return last
    if last is None or not is_terminal(last):
        console.print("[yellow]stream ended before the job finished[/]")
        return None
    if last.kind == job_pb2.EVENT_KIND_JOB_COMPLETED:
        return last
    for error in last.errors:
        console.print(
            f"[red]{escape(error.code)}[/]: {escape(error.message)}\nremediation: {escape(error.remediation)}"
        )
    if last.correlation_id:
        console.print(f"correlation id: {last.correlation_id}")
    if last.failure.log_path:
        console.print(f"log: {escape(last.failure.log_path)}")
    return None


async def _follow_to_output(client: AsyncClient, job_id: str, after: int) -> int:
    """Follows a job with the live display; its video's path is the result."""
    completed = await follow(client, job_id, after, False)
    if completed is None:
        return 1
    print_result(completed.output.video_path)
    return 0


async def client_command(args: argparse.Namespace) -> int:
    # The spec is read first: a --script that cannot be used fails before any connection.
    spec = job_spec(args) if getattr(args, "jobs_command", None) == "create" else None
    try:
        client = client_for(args)
    except (ValueError, OSError) as invalid:  # a malformed --correlation-id, an unreadable --tls-ca
        console.print(f"[red]error[/]: {escape(str(invalid))}")
        return 2
    try:
        async with client:
            return await _run_client_command(client, args, spec)
    except ClientError as error:
        return report_rpc_error(error)


async def _run_client_command(
    client: AsyncClient, args: argparse.Namespace, spec: job_pb2.JobSpec | None
) -> int:
    if args.command == "stages":
        for stage in await client.list_stages():
            print_result(
                f"{stage.order:>5}  {stage.name:<14} {stage.title:<16} weight {stage.weight:g}  "
                f"{stage.plugin} {stage.plugin_version}".rstrip()
            )
        return 0
    command = args.jobs_command
    if command == "create":
        assert spec is not None
        spec.review_script = args.review
        created = await client.create_job(spec, request_id=args.request_id or None)
        print_result(created.id)
        hint_brief(spec)
        if args.review:
            # Followed to its end, the job would wait for the approval that this command cannot give.
            console.print(
                f"the job waits for review after its script: `reelcast jobs script {created.id}`, then "
                f"`reelcast jobs approve {created.id} [--script FILE]`",
                soft_wrap=True,
                markup=False,
            )
            return 0
        return await _follow_to_output(client, created.id, 0) if args.watch else 0
    if command == "get":
        print_json(await client.get_job(args.job_id))
        return 0
    if command == "list":
        listed = await client.list_jobs_page(
            statuses=_status_names(args.status),
            labels=",".join(args.labels),
            page_size=args.page_size,
            page_token=args.page_token,
        )
        if args.json:
            print_json(listed)
            return 0
        for job in listed.jobs:
            status = job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
            print_result(f"{job.id}  {status:<10} {job.percent:5.1f}%  {job.spec.brief.topic[:60]}")
        if listed.next_page_token:
            # A hint for people, so that each line of stdout is a job; `--json` gives scripts the token.
            console.print(f"next page: --page-token {listed.next_page_token}", soft_wrap=True, markup=False)
        return 0
    if command == "watch":
        if args.json:
            # The events are the result: one JSON line each, and nothing else on stdout.
            return 0 if await follow(client, args.job_id, args.after, True) is not None else 1
        return await _follow_to_output(client, args.job_id, args.after)
    if command == "cancel":
        cancelled = await client.cancel_job(args.job_id)
        print_result(f"cancel requested: {cancelled.id}")
        return 0
    if command == "retry":
        retried = await client.retry_job(args.job_id)
        print_result(f"retried: {retried.id} (attempt {retried.attempt})")
        return 0
    if command == "delete":
        await client.delete_job(args.job_id)
        print_result(f"deleted: {args.job_id}")
        return 0
    if command == "script":
        job = await client.get_job(args.job_id)
        if not job.HasField("review"):
            status = job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
            console.print(f"[red]error[/]: the job has no script under review (it is {status})")
            console.print(
                "remediation: create it with `reelcast jobs create --review` and wait for its script"
            )
            return 1
        print_result(scenes_json(job.review.scenes))
        return 0
    if command == "approve":
        scenes: list[job_pb2.Scene] | None = read_scenes_file(args.script) if args.script is not None else []
        if scenes is None:
            return 2
        approved = await client.approve_job(args.job_id, scenes)
        print_result(f"approved: {approved.id}")
        return 0
    raise AssertionError(f"unhandled command {args}")


def scenes_json(scenes: Sequence[job_pb2.Scene]) -> str:
    """Scenes as `jobs script` prints them and ``read_scenes_file`` reads them: a JSON list of objects. A
    caption that is the narration is left out: absent, it follows the narration, so that a user who edits
    the narration does not leave the old words on screen."""
    shown = []
    for scene in scenes:
        fields = json_format.MessageToDict(scene)
        if scene.caption == scene.narration:
            fields.pop("caption", None)
        shown.append(fields)
    return json.dumps(shown, ensure_ascii=False, indent=2)


def read_scenes_file(path: Path) -> list[job_pb2.Scene] | None:
    """The scenes of ``approve --script FILE`` (and of ``render --review``'s edited file): a JSON list of
    objects; None once the problem is printed."""
    try:
        scenes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as unreadable:
        console.print(
            f"[red]error[/]: cannot read the scenes in {escape(str(path))}: {escape(str(unreadable))}"
        )
        console.print("remediation: pass a JSON list of scenes, as `reelcast jobs script JOB_ID` prints it")
        return None
    try:
        if not isinstance(scenes, list) or not all(isinstance(scene, dict) for scene in scenes):
            raise ValueError("not a JSON list of scene objects")
        return scene_messages(scenes)
    except ValueError as invalid:
        console.print(f"[red]error[/]: {escape(str(path))}: {escape(str(invalid))}")
        console.print("remediation: pass a JSON list of scenes, as `reelcast jobs script JOB_ID` prints it")
        return None
