"""``reelcast gc``: delete the finished jobs past their retention period now."""

from __future__ import annotations

import argparse

from reelcast.cli.output import print_result
from reelcast.cli.settings import read_settings


async def run_gc(args: argparse.Namespace) -> int:
    from reelcast.server.storage.embedded.job_store import SqliteJobStore
    from reelcast.server.storage.embedded.media_store import LocalMediaStore
    from reelcast.server.storage.retention import collect_garbage, collect_media_garbage

    settings = read_settings(args)
    if args.older_than is not None:
        settings.retention_seconds = args.older_than
    store = SqliteJobStore(settings.database_path)
    media = LocalMediaStore(settings.media_database_path, settings.media_dir)
    try:
        removed = await collect_garbage(settings, store)
        unused = await collect_media_garbage(settings, store, media)
    finally:
        await store.close()
        media.close()
    print_result(f"removed {len(removed)} finished job(s) and {len(unused)} unused media file(s)")
    return 0
