"""``reelcast webhooks create|list|delete|rotate|replay``: the caller's webhook endpoints
(docs/webhooks.md), over gRPC like ``reelcast jobs``."""

from __future__ import annotations

import argparse

from rich.markup import escape

from reelcast.cli.jobs import _status_names, client_for
from reelcast.cli.output import console, print_json, print_result, report_rpc_error
from reelcast.client import AsyncClient
from reelcast.client import ReelcastError as ClientError
from reelcast.jobs.v1 import job_pb2, job_service_pb2


def _line(webhook: job_service_pb2.Webhook) -> str:
    events = "terminal" if webhook.terminal_only else ("statuses" if webhook.statuses else "all")
    state = "FAILING " + webhook.last_error if webhook.failing else "ok"
    return f"{webhook.id}  {events:<8} {webhook.url}  {state}"


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label takes KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


async def webhooks_command(args: argparse.Namespace) -> int:
    try:
        client = client_for(args)
        labels = _labels(getattr(args, "label", None) or [])
        statuses = _status_names(getattr(args, "status", None) or [])
        if args.webhooks_command == "replay" and (args.since is None) == (args.job_id is None):
            raise ValueError("replay takes a job id or --since, one of the two")
    except (ValueError, OSError, argparse.ArgumentTypeError) as invalid:
        console.print(f"[red]error[/]: {escape(str(invalid))}")
        return 2
    try:
        async with client:
            return await _run(client, args, labels, statuses)
    except ClientError as error:
        return report_rpc_error(error)


async def _run(
    client: AsyncClient,
    args: argparse.Namespace,
    labels: dict[str, str],
    statuses: list[job_pb2.JobStatus.ValueType],
) -> int:
    command = args.webhooks_command
    if command == "create":
        webhook = job_service_pb2.Webhook(
            url=args.url, terminal_only=args.terminal, statuses=statuses, labels=labels
        )
        created = await client.create_webhook(webhook)
        # The id, then the secret (shown only now), one per line: `read ID SECRET` works in a script.
        print_result(created.webhook.id)
        print_result(created.secret)
        return 0
    if command == "list":
        page = await client.list_webhooks_page(page_size=args.page_size, page_token=args.page_token)
        if args.json:
            print_json(page)
            return 0
        for webhook in page.webhooks:
            print_result(_line(webhook))
        if page.next_page_token:
            console.print(f"next page: --page-token {page.next_page_token}", soft_wrap=True, markup=False)
        return 0
    if command == "delete":
        await client.delete_webhook(args.webhook_id)
        print_result(f"deleted: {args.webhook_id}")
        return 0
    if command == "rotate":
        print_result(await client.rotate_webhook_secret(args.webhook_id))
        return 0
    if command == "replay":
        if args.since is not None:
            replayed = await client.replay_webhook_since(args.webhook_id, args.since)
        else:
            replayed = await client.replay_webhook(args.webhook_id, args.job_id, args.from_sequence)
        print_result(f"replaying {replayed} events")
        return 0
    raise AssertionError(f"unhandled command {args}")
