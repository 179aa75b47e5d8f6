"""Several bridge processes on one port (``reelcast bridge --processes N``, ``REELCAST_BRIDGE_PROCESSES``), so
that fan-out grows with the cores: one event loop writes every SSE frame of its process, and one process uses
one core.

Each child is a whole bridge with its own upstreams (one per job it serves), bound to the same address with
``SO_REUSEPORT``: the kernel spreads new connections over the children's listening sockets, and no process
proxies another's traffic. The bridge keeps no state of its own (sessions, keys and stream cursors live in
the server), so a request or an SSE reconnect may land on any child. The parent binds the port first
(port 0 picks one), without listening, so the port stays reserved while children start and restart. It
supervises them as gunicorn's arbiter does: a child that exits is started again after a pause that grows
with quick repeated failures, and a SIGTERM or SIGINT stops every child within its grace.

What is per process: ``/metrics`` answers for the process that took the scrape (scrape each child's port
through a front, or use the server's metrics), and the per-user SSE connection cap and body limits are
checked by each process alone. A child killed with connections still in its accept queue loses those
(``SO_REUSEPORT`` gives each socket its own queue); their clients reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from reelcast.bridge.settings import BridgeSettings, split_listen

log = logging.getLogger(__name__)

# spawn, not fork: the parent has an event loop running and perhaps threads; a forked copy of them is unsafe.
_CONTEXT = multiprocessing.get_context("spawn")
READY_TIMEOUT_SECONDS = 60.0
# A stopped child gets this long after SIGTERM (its SSE streams end at once, requests finish) before SIGKILL.
STOP_GRACE_SECONDS = 10.0
# A child that exits is started again after RESTART_PAUSE_SECONDS, doubled for each exit within
# QUICK_EXIT_SECONDS of its start, up to MAX_RESTART_PAUSE_SECONDS.
RESTART_PAUSE_SECONDS = 0.5
MAX_RESTART_PAUSE_SECONDS = 30.0
QUICK_EXIT_SECONDS = 10.0


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reserve_port(http_listen: str) -> socket.socket:
    """A socket bound to ``http_listen`` with ``SO_REUSEPORT`` and not listening: it holds the port (the
    one port 0 picked) for the children, and takes no connection itself."""
    from reelcast.bridge.server import bind_http_listener

    return bind_http_listener(http_listen, reuse_port=True)


def _child_main(
    settings: BridgeSettings,
    prepare: Callable[[], None] | None,
    served: Callable[[], None] | None,
    ready: multiprocessing.Queue[int],
) -> None:
    """One child: the bridge on the reserved port until SIGTERM or SIGINT."""
    if prepare is not None:
        prepare()
    asyncio.run(_serve_child(settings, served, ready))


async def _serve_child(
    settings: BridgeSettings, served: Callable[[], None] | None, ready: multiprocessing.Queue[int]
) -> None:
    from reelcast.bridge.server import bind_http_listener, serve_bridge

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    listener = bind_http_listener(settings.http_listen, reuse_port=True)

    def on_ready(_port: int) -> None:
        if served is not None:
            served()
        ready.put(os.getpid())

    await serve_bridge(settings, stop=stop, on_ready=on_ready, listener=listener)


@dataclasses.dataclass
class _Child:
    process: BaseProcess
    started_at: float
    quick_exits: int = 0


class BridgeProcesses:
    """``count`` bridge children on ``settings.http_listen``, supervised until ``stop`` is set (see the
    module docstring). ``prepare`` runs first in each child (logging and tracing set-up), ``served`` once
    it serves (uvicorn set up loggers of its own meanwhile); both must be picklable, as a module-level
    function or a ``functools.partial`` of one is."""

    def __init__(
        self,
        settings: BridgeSettings,
        count: int,
        prepare: Callable[[], None] | None = None,
        served: Callable[[], None] | None = None,
    ) -> None:
        if count < 2:
            raise ValueError(f"a supervised bridge has 2 processes or more, got {count}")
        self.settings = settings
        self.count = count
        self.prepare = prepare
        self.served = served
        self._ready: multiprocessing.Queue[int] = _CONTEXT.Queue()
        self._children: list[_Child] = []

    @property
    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children if child.process.pid is not None]

    def _start(self, settings: BridgeSettings, quick_exits: int = 0) -> _Child:
        process = _CONTEXT.Process(
            target=_child_main,
            args=(settings, self.prepare, self.served, self._ready),
            name="reelcast-bridge",
            daemon=False,
        )
        process.start()
        return _Child(process, time.monotonic(), quick_exits)

    async def run(self, stop: asyncio.Event, on_ready: Callable[[int, list[int]], None]) -> int:
        """Runs the children until ``stop``; ``on_ready(port, pids)`` once every first child serves. Returns
        the exit code: 0 after a stop, 1 when the first children could not start."""
        placeholder = reserve_port(self.settings.http_listen)
        try:
            host, _ = split_listen(self.settings.http_listen)
            port: int = placeholder.getsockname()[1]
            child_settings = dataclasses.replace(self.settings, http_listen=listen_address(host, port))
            self._children = [self._start(child_settings) for _ in range(self.count)]
            if not await self._all_ready():
                return 1
            on_ready(port, self.pids)
            await self._supervise(stop, child_settings)
            return 0
        finally:
            await asyncio.to_thread(self._stop_all)
            placeholder.close()

    async def _all_ready(self) -> bool:
        waiting = set(self.pids)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while waiting and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                waiting.discard(await asyncio.to_thread(self._ready.get, True, 0.2))
            for child in self._children:
                if child.process.pid in waiting and not child.process.is_alive():
                    log.error(
                        "bridge process %s exited (%s) before it served",
                        child.process.pid,
                        child.process.exitcode,
                    )
                    return False
        if waiting:
            log.error(
                "bridge processes %s did not serve within %.0f s", sorted(waiting), READY_TIMEOUT_SECONDS
            )
        return not waiting

    async def _supervise(self, stop: asyncio.Event, settings: BridgeSettings) -> None:
        restarts: dict[int, float] = {}  # index of an exited child -> when it starts again
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            if stop.is_set():
                return
            now = time.monotonic()
            for index, child in enumerate(self._children):
                if child.process.is_alive() or index in restarts:
                    continue
                child.process.join()
                quick = now - child.started_at < QUICK_EXIT_SECONDS
                child.quick_exits = child.quick_exits + 1 if quick else 0
                pause = min(MAX_RESTART_PAUSE_SECONDS, RESTART_PAUSE_SECONDS * 2**child.quick_exits)
                log.warning(
                    "bridge process %s exited (code %s); another starts in %.1f s",
                    child.process.pid,
                    child.process.exitcode,
                    pause,
                )
                restarts[index] = now + pause
            for index, due in list(restarts.items()):
                if due <= now:
                    del restarts[index]
                    self._children[index] = self._start(settings, self._children[index].quick_exits)
            self._drain_ready()

    def _drain_ready(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._ready.get_nowait()

    def _stop_all(self) -> None:
        for child in self._children:
            if child.process.is_alive() and child.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self._children:
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.warning(
                    "bridge process %s did not stop within %.0f s: killed",
                    child.process.pid,
                    STOP_GRACE_SECONDS,
                )
                child.process.kill()
                child.process.join()
        self._ready.close()
