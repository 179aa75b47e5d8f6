"""The fan-out baseline: nginx with Debian's nchan module (``make bench-deps`` installs it), run as a child
on a free loopback port with a config generated in a temp dir, plus a publisher that pipelines its POSTs over
several connections so that its round trips are not what is measured.

nginx runs one worker process, like reelcast's one server process. ``GET /sub`` is an EventSource
subscriber of the channel ``bench``; ``POST /pub`` publishes to it, with ``X-EventSource-Event`` naming the
event as the bridge names it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import children, free_port

MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
CONFIG = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
        }}
        location = /pub {{
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 64;
        }}
    }}
}}
"""


def available() -> bool:
    return MODULE.exists() and shutil.which("nginx") is not None


def nginx_version() -> str:
    result = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return result.stderr.strip().removeprefix("nginx version: ")


def nchan_version() -> str:
    command = ["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


class NchanServer:
    """``http`` is HOST:PORT; ``worker`` the pid of the one worker (its CPU and RSS are nchan's)."""

    def __init__(self, connections: int = 20000) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="reelcast-bench-nginx-")
        prefix = Path(self.scratch.name)
        self.port = free_port()
        config = CONFIG.format(
            module=MODULE, prefix=prefix, port=self.port, connections=connections, nofile=connections + 1000
        )
        (prefix / "nginx.conf").write_text(config)
        self.process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.http = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            workers = children(self.process.pid)
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{(prefix / 'error.log').read_text()}")
            if workers and _listening(self.port):
                self.worker = workers[0]
                return
            time.sleep(0.05)
        self.close()
        raise TimeoutError("nginx did not start")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.scratch.cleanup()


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def publish(
    http: str, payloads: list[bytes], start: float, end: float, connections: int = 4, depth: int = 32
) -> dict[str, int]:
    """Publishes ``payloads`` (cycling) until the wall-clock time ``end`` over ``connections`` keep-alive
    connections, each with ``depth`` requests in flight; counts the publishes answered 2xx between ``start``
    and ``end``, and any other answer."""
    host, port = http.rsplit(":", 1)
    requests = [
        (
            f"POST /pub HTTP/1.1\r\nHost: {http}\r\nContent-Type: text/plain\r\n"
            f"X-EventSource-Event: step-progress\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        + payload
        for payload in payloads
    ]
    counts = {"published": 0, "refused": 0}

    async def one_connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        index = offset
        try:
            while time.time() < end:
                batch = [requests[(index + n) % len(requests)] for n in range(depth)]
                index += depth
                writer.write(b"".join(batch))
                answered = ok = 0
                tail = b""  # a status line split across two reads is counted once
                while answered < depth:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise ConnectionError("nginx closed the publisher's connection")
                    data = tail + chunk
                    answered += data.count(b"HTTP/1.1 ") - tail.count(b"HTTP/1.1 ")
                    ok += data.count(b"HTTP/1.1 2") - tail.count(b"HTTP/1.1 2")
                    tail = data[-9:]
                if time.time() >= start:
                    counts["published"] += ok
                    counts["refused"] += answered - ok
        finally:
            writer.close()

    await asyncio.gather(*(one_connection(n * 997) for n in range(connections)))
    return counts
