"""Fixtures of the NATS backend's tests: real nats-server processes, stopped in ``finally``.

``settings`` is overridden here and parametrized over both backends, so that every test written against the
``server`` fixture (tests/conftest.py) runs on SQLite and on NATS: that is the contract suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelcast.server.config import Settings
from tests.nats.natsproc import NatsServer


@pytest.fixture(params=["sqlite", "nats"])
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def settings(tmp_path: Path, backend_name: str, request: pytest.FixtureRequest) -> Settings:
    values = Settings(
        data_dir=tmp_path / "data",
        grpc_listen="127.0.0.1:0",
        progress_min_interval_seconds=0.0,
        shutdown_grace_seconds=0.5,
        auth_required=False,
    )
    if backend_name == "nats":
        node: NatsServer = request.getfixturevalue("nats_server")
        values.store_url = node.url
        values.nats_ack_wait_seconds = 3.0
    return values
