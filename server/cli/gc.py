"""``reelcast gc``: delete the finished jobs past their retention period now."""

from __future__ import annotations

import argparse

from reelcast.server.cli.output import print_result
from reelcast.server.cli.settings import read_settings


async def run_gc(args: argparse.Namespace) -> int:
    from reelcast.server.retention import collect_garbage
    from reelcast.server.store import SqliteJobStore

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
