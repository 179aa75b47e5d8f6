"""A real TCP proxy on 127.0.0.1 for resumption tests: it forwards bytes both ways and, on :meth:`cut`,
aborts every open connection (an RST on both sides, as a dropped network path or a crashed load balancer
does); ``refuse_first`` resets the first connections at once. It keeps listening, so the client's
reconnection goes through it again. Test code, not a stand-in for any part of reelcast: the client and the
server on either side are the real ones."""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    def __init__(self, upstream: str, refuse_first: int = 0) -> None:
        self.upstream = upstream
        # Connections to reset at once, before any byte is forwarded (a server not up yet).
        self.refuse_first = refuse_first
        self.accepted = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.Condition()

    @property
    def target(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        async with self._accepting:
            self._accepting.notify_all()
        if self.accepted <= self.refuse_first:
            client_writer.transport.abort()
            return
        host, port = self.upstream.rsplit(":", 1)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        pipes = [
            asyncio.create_task(self._pipe(client_reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, client_writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._writers.discard(writer)
            for pipe in pipes:
                pipe.cancel()
                self._tasks.discard(pipe)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    async def wait_accepted(self, count: int) -> None:
        """Returns once ``count`` connections were accepted in all."""
        async with self._accepting:
            await self._accepting.wait_for(lambda: self.accepted >= count)

    def cut(self) -> None:
        """Aborts every connection open now (both sides)."""
        self.cuts += 1
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
