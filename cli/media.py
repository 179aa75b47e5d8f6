"""``reelcast media upload|list|delete``: the caller's own pictures, clips and tracks (docs/api.md, Media),
over gRPC like ``reelcast jobs``."""

from __future__ import annotations

import argparse

from rich.markup import escape

from reelcast.cli.jobs import client_for
from reelcast.cli.output import console, print_json, print_result, report_rpc_error
from reelcast.client import AsyncClient
from reelcast.client import ReelcastError as ClientError
from reelcast.jobs.v1 import job_service_pb2


def _line(media: job_service_pb2.Media) -> str:
    kind = job_service_pb2.MediaKind.Name(media.kind).removeprefix("MEDIA_KIND_").lower()
    shape = f"{media.width}x{media.height}" if media.width else ""
    if media.duration_seconds:
        shape = f"{shape} {media.duration_seconds:.1f}s".strip()
    return f"{media.id}  {kind:<5} {media.size_bytes:>10}  {shape:<16} {media.file_name[:60]}".rstrip()


async def media_command(args: argparse.Namespace) -> int:
    try:
        client = client_for(args)
    except (ValueError, OSError) as invalid:
        console.print(f"[red]error[/]: {escape(str(invalid))}")
        return 2
    try:
        async with client:
            return await _run(client, args)
    except ClientError as error:
        return report_rpc_error(error)


async def _run(client: AsyncClient, args: argparse.Namespace) -> int:
    command = args.media_command
    if command == "upload":
        if not args.file.is_file():
            console.print(f"[red]error[/]: no such file: {escape(str(args.file))}")
            return 2
        media = await client.upload_media(args.file)
        # The id alone on stdout, so that `ID=$(reelcast media upload logo.png)` works.
        print_result(media.id)
        return 0
    if command == "list":
        page = await client.list_media_page(page_size=args.page_size, page_token=args.page_token)
        if args.json:
            print_json(page)
            return 0
        for media in page.media:
            print_result(_line(media))
        if page.next_page_token:
            console.print(f"next page: --page-token {page.next_page_token}", soft_wrap=True, markup=False)
        return 0
    if command == "delete":
        await client.delete_media(args.media_id)
        print_result(f"deleted: {args.media_id}")
        return 0
    raise AssertionError(f"unhandled command {args}")
