"""Where an idle SSE connection's memory goes: the bridge runs in this process under tracemalloc, in front of
``reelcast serve --no-bridge`` with idle jobs; raw-socket client processes open connections to the jobs'
event streams; the traced growth per connection is printed by the innermost frame that allocated it.

Not a section of ``make bench`` (tracemalloc slows the process it traces): the profile behind the idle
connection analysis in docs/benchmarks.md. ``python -m bench.connection_profile [--connections N]``;
``make bench-smoke`` runs it with 20 and fails if any connection was not held.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path

from bench.harness import ClientFleet, create_jobs, raise_nofile, serve

JOBS = 20


def _site(frame: tracemalloc.Frame) -> str:
    """A frame's file, shortened to the package path (``uvicorn/protocols/http/httptools_impl.py``)."""
    name = frame.filename
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in name:
            name = name.split(marker, 1)[1]
    return f"{name}:{frame.lineno}"


async def profile(connections: int) -> None:
    from reelcast.bridge.app import create_app
    from reelcast.bridge.server import serve_app

    with tempfile.TemporaryDirectory(prefix="reelcast-connection-profile-") as scratch:
        gate = Path(scratch) / "gate"
        gate.mkdir()
        api = serve(Path(scratch) / "data", "idle", gate=gate, concurrency=JOBS, bridge=False)
        try:
            job_ids = await create_jobs(api.grpc, JOBS)
            paths = [f"/api/jobs/{job_id}/events" for job_id in job_ids]
            app = create_app(api.grpc, heartbeat_seconds=15.0, auth_required=False)
            stop = asyncio.Event()
            ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            server = asyncio.create_task(serve_app(app, "127.0.0.1:0", stop=stop, on_ready=ready.set_result))
            http = f"127.0.0.1:{await ready}"
            # Warm up: every job's upstream feed, imports and caches exist before the first snapshot.
            warm = await asyncio.to_thread(ClientFleet, http, paths, JOBS, 1)
            await asyncio.sleep(1.0)
            tracemalloc.start(12)
            before = tracemalloc.take_snapshot()
            fleet = await asyncio.to_thread(ClientFleet, http, paths, connections, 2)
            await asyncio.sleep(2.0)
            held = await asyncio.to_thread(fleet.open_connections)
            refused = fleet.failed, sorted(fleet.statuses)
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            await asyncio.to_thread(fleet.close)
            await asyncio.to_thread(warm.close)
            stop.set()
            await server
        finally:
            (gate / "stop").touch()
            api.close()
    if held != connections or refused[0]:
        failed, statuses = refused
        raise SystemExit(f"{held} of {connections} connections held; {failed} refused (statuses {statuses})")
    by_line: dict[str, int] = defaultdict(int)
    by_file: dict[str, int] = defaultdict(int)
    for stat in after.compare_to(before, "traceback"):
        frame = stat.traceback[-1]  # innermost: where the allocation happened
        by_line[_site(frame)] += stat.size_diff
        by_file[_site(frame).rsplit(":", 1)[0]] += stat.size_diff
    total = sum(by_file.values())
    each = total / connections / 1024
    print(f"{held} of {connections} connections open; traced growth {each:.2f} KiB each")
    print("\nby file (bytes per connection):")
    for name, size in sorted(by_file.items(), key=lambda item: -item[1])[:20]:
        print(f"{size / connections:9.0f}  {name}")
    print("\nby line (bytes per connection):")
    for name, size in sorted(by_line.items(), key=lambda item: -item[1])[:30]:
        print(f"{size / connections:9.0f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    args = parser.parse_args()
    raise_nofile()
    asyncio.run(profile(args.connections))


if __name__ == "__main__":
    main()
