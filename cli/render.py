"""``reelcast render``: one video end to end, on an in-process server of its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil

from reelcast.cli.jobs import follow, hint_brief, job_spec
from reelcast.cli.output import print_result, report_rpc_error
from reelcast.cli.review import ReviewAbortedError, ReviewFile, check_reviewer, review, script_path
from reelcast.cli.settings import read_settings
from reelcast.client import AsyncClient
from reelcast.client import ReelcastError as ClientError
from reelcast.server.config import use_private_umask


async def run_render(args: argparse.Namespace) -> int:
    """Runs an in-process server on a free loopback port and drives it like any other client. With
    captions, the SRT and WebVTT files are written beside the MP4, with its name (``otters.srt``)."""
    from reelcast.server.app import ReelcastServer

    spec = job_spec(args)  # a --script that cannot be used fails before the server starts
    spec.review_script = args.review
    if args.review:
        if not check_reviewer():
            return 2
        args.output.parent.mkdir(parents=True, exist_ok=True)  # for the script, with the user's usual mode
    hint_brief(spec)
    settings = read_settings(args)
    settings.grpc_listen = "127.0.0.1:0"
    settings.tls_cert_file = settings.tls_key_file = None
    # Owner-only in the data dir (docs/security.md), while the copy at --output gets the user's usual mode.
    user_umask = use_private_umask()
    server = ReelcastServer(settings)
    await server.start()
    # A key of its own for this one render, revoked when it ends: the port is open to local users meanwhile.
    record, raw_key = await server.keys.acreate("render")
    try:
        async with AsyncClient(server.target, api_key=raw_key) as client:
            created = await client.create_job(spec)
            if args.review:
                script = ReviewFile(script_path(args.output), user_umask)
                status = await _review(client, created.id, script)
                if status:
                    return status
            completed = await follow(client, created.id, 0, False)
            if completed is None:
                return 1
            os.umask(user_umask)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            output = completed.output
            copies = [(output.video_path, args.output)] + [
                (source, args.output.with_suffix(suffix))
                for source, suffix in ((output.subtitle_path, ".srt"), (output.webvtt_path, ".vtt"))
                if source
            ]
            for source, destination in copies:
                await asyncio.to_thread(shutil.copyfile, source, destination)
            print_result(str(args.output.resolve()))
            return 0
    except ClientError as error:
        return report_rpc_error(error)
    finally:
        await server.keys.arevoke(record.id)
        await server.stop(grace=1.0)


async def _review(client: AsyncClient, job_id: str, script: ReviewFile) -> int:
    """Follows the job to its script, has it edited and approved (cli/review.py); the exit status of a
    review that ended without an approval, 0 once approved. A job left unapproved is cancelled, Ctrl-C
    included: this command's server stops with it, and nothing should wait for it."""
    approved = False
    try:
        if await follow(client, job_id, 0, False, until_review=True) is None:
            return 1
        await review(client, job_id, script)
        approved = True
        return 0
    except ReviewAbortedError as aborted:
        return aborted.status
    finally:
        if not approved:
            with contextlib.suppress(ClientError):
                await client.cancel_job(job_id)
