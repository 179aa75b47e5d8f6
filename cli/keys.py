"""``reelcast keys``: create, list and revoke API keys on the embedded store or on NATS."""

from __future__ import annotations

import argparse

from reelcast.cli.output import console, print_result
from reelcast.cli.settings import read_settings
from reelcast.server.security.keys import ApiKeys

# A command, unlike a server, gives up soon when NATS cannot be reached.
KEYS_NATS_TIMEOUT = 10.0


async def run_keys(args: argparse.Namespace) -> int:
    """``reelcast keys``: on the embedded SQLite store, or on NATS with ``--store nats://…`` (the keys every
    API server of that deployment checks)."""
    from reelcast.server.storage.selection import open_backend

    settings = read_settings(args)
    backend = open_backend(settings)  # an unusable store URL is StoreChoiceError: main prints it, exit 2
    await backend.open(timeout=KEYS_NATS_TIMEOUT)
    keys = backend.key_store(settings)
    try:
        return await _key_command(keys, args)
    finally:
        keys.close()
        await backend.close()


async def _key_command(store: ApiKeys, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        try:
            record, raw = await store.acreate(args.user, admin=args.admin)
        except ValueError as invalid:
            console.print(f"[red]error[/]: {invalid}")
            return 2
        console.print(f"created key {record.id} for {record.user}{' (admin)' if record.admin else ''}")
        console.print("it is shown only now; store it safely:")
        print_result(raw)
        return 0
    if args.keys_command == "list":
        for key in await store.alist():
            flags = " ".join(f for f in ("admin" if key.admin else "", "revoked" if key.revoked else "") if f)
            print_result(f"{key.id}  {key.user:<24} {flags}".rstrip())
        return 0
    if await store.arevoke(args.key_id):
        print_result(f"revoked {args.key_id}")
        return 0
    console.print(f"[red]error[/]: no active key with id {args.key_id!r}")
    return 1
