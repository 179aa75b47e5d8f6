"""``reelcast gc``: delete the finished jobs past their retention period now."""

from __future__ import annotations

import argparse

from reelcast.cli.output import print_result
from reelcast.cli.settings import read_settings


async def run_gc(args: argparse.Namespace) -> int:
    from reelcast.server.storage.embedded.job_store import SqliteJobStore
    from reelcast.server.storage.retention import collect_garbage

    settings = read_settings(args)
    if args.older_than is not None:
        settings.retention_seconds = args.older_than
    store = SqliteJobStore(settings.database_path)
    try:
        removed = await collect_garbage(settings, store)
    finally:
        await store.close()
    print_result(f"removed {len(removed)} finished job(s)")
    return 0
