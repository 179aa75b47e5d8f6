"""API keys: created by ``reelcast keys create``, stored only as a hash, checked on every call.

A key reads ``rck_<id>_<secret>``. The id (8 hex digits) is public: ``keys list`` shows it and ``keys revoke``
takes it, and it finds the row without scanning. The secret is 32 random bytes (256 bits). The table keeps a
SHA-256 of the whole key and compares it with ``hmac.compare_digest``.

Intentional divergence from password storage: no slow KDF (bcrypt, scrypt). A slow hash protects guessable
secrets; a 256-bit random secret cannot be guessed, and a slow hash on every RPC would cost more than it buys.

The store follows the job store: a table in the same SQLite database (WAL allows the server and the CLI to use
it at once), its own connection, statements on one thread. On NATS, keys live in the ``reelcast_keys`` KV
bucket that every API server shares (server/nats_keys.py); both implement :class:`ApiKeys`.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")

KEY_PREFIX = "rck"
_KEY = re.compile(r"^rck_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    admin INTEGER NOT NULL,
    hash TEXT NOT NULL,
    create_time_us INTEGER NOT NULL,
    revoke_time_us INTEGER
);
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    user: str
    admin: bool
    create_time_us: int
    revoked: bool


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("ascii")).hexdigest()


def key_id_of(raw_key: str) -> str | None:
    """The public id of a well-formed key, else None."""
    match = _KEY.match(raw_key)
    return match.group(1) if match else None


def check_user_name(user: str) -> None:
    if not USER_NAME.match(user):
        raise ValueError("user names are 1 to 64 characters of [A-Za-z0-9._@-]")


def new_raw_key() -> tuple[str, str, str]:
    """A fresh key: (its public id, the raw key, the hash to store)."""
    key_id = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return key_id, raw, _hash(raw)


def hash_matches(stored: str | None, raw_key: str) -> bool:
    """Whether ``raw_key`` hashes to ``stored``, compared in constant time; a missing hash (no such key)
    costs the same comparison, so a missing id and a wrong secret take the same time."""
    expected = (stored or "0" * 64).encode()
    return hmac.compare_digest(expected, _hash(raw_key).encode()) and stored is not None


class ApiKeys(Protocol):
    """What the server and ``reelcast keys`` need of a key store (SQLite or NATS)."""

    async def acreate(self, user: str, admin: bool = False) -> tuple[ApiKey, str]:
        """A new key for ``user``: (its record, the raw key). ValueError for a malformed user name."""

    async def alist(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    async def arevoke(self, key_id: str) -> bool:
        """Revokes the key; False if there is no such unrevoked key."""

    async def ahas_admin(self) -> bool: ...

    async def averify(self, raw_key: str) -> ApiKey | None:
        """The key's record if ``raw_key`` is a valid, unrevoked key, else None."""

    async def aget_active(self, key_id: str) -> ApiKey | None:
        """The unrevoked key with this public id, else None."""

    def close(self) -> None: ...


class KeyStore:
    """The ``api_keys`` table. Synchronous methods for the CLI, ``a``-prefixed coroutines for the server."""

    def __init__(self, database_path: Path) -> None:
        database_path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            database_path, isolation_level=None, timeout=30, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reelcast-keys")

    def create(self, user: str, admin: bool = False) -> tuple[ApiKey, str]:
        """A new key for ``user``: (its record, the raw key). The raw key exists only in the return value."""
        check_user_name(user)
        with self._lock:
            while True:
                key_id, raw, digest = new_raw_key()
                now = time.time_ns() // 1000
                try:
                    self._connection.execute(
                        "INSERT INTO api_keys (id, user, admin, hash, create_time_us) VALUES (?, ?, ?, ?, ?)",
                        (key_id, user, int(admin), digest, now),
                    )
                except sqlite3.IntegrityError:
                    continue  # an id collision (1 in 4 billion): draw again
                return ApiKey(key_id, user, admin, now, False), raw

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, user, admin, create_time_us, revoke_time_us FROM api_keys ORDER BY create_time_us"
            ).fetchall()
        return [ApiKey(row[0], row[1], bool(row[2]), row[3], row[4] is not None) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revokes the key; False if there is no such unrevoked key."""
        with self._lock:
            cursor = self._connection.execute(
                "UPDATE api_keys SET revoke_time_us = ? WHERE id = ? AND revoke_time_us IS NULL",
                (time.time_ns() // 1000, key_id),
            )
        return cursor.rowcount == 1

    def has_admin(self) -> bool:
        with self._lock:
            row = self._connection.execute(
                "SELECT 1 FROM api_keys WHERE admin = 1 AND revoke_time_us IS NULL LIMIT 1"
            ).fetchone()
        return row is not None

    def verify(self, raw_key: str) -> ApiKey | None:
        """The key's record if ``raw_key`` is a valid, unrevoked key, else None (in constant time for the
        secret: the row is found by the public id, the hash compared with ``compare_digest``)."""
        key_id = key_id_of(raw_key)
        if key_id is None:
            return None
        with self._lock:
            row = self._connection.execute(
                "SELECT user, admin, hash, create_time_us FROM api_keys"
                " WHERE id = ? AND revoke_time_us IS NULL",
                (key_id,),
            ).fetchone()
        if not hash_matches(row[2] if row else None, raw_key) or row is None:
            return None
        return ApiKey(key_id, row[0], bool(row[1]), row[3], False)

    def get_active(self, key_id: str) -> ApiKey | None:
        """The unrevoked key with this public id, else None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT user, admin, create_time_us FROM api_keys WHERE id = ? AND revoke_time_us IS NULL",
                (key_id,),
            ).fetchone()
        return ApiKey(key_id, row[0], bool(row[1]), row[2], False) if row else None

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def acreate(self, user: str, admin: bool = False) -> tuple[ApiKey, str]:
        return await self._run(lambda: self.create(user, admin))

    async def alist(self) -> builtins.list[ApiKey]:  # `list` is the sync method here
        return await self._run(self.list)

    async def arevoke(self, key_id: str) -> bool:
        return await self._run(lambda: self.revoke(key_id))

    async def ahas_admin(self) -> bool:
        return await self._run(self.has_admin)

    async def averify(self, raw_key: str) -> ApiKey | None:
        return await self._run(lambda: self.verify(raw_key))

    async def aget_active(self, key_id: str) -> ApiKey | None:
        return await self._run(lambda: self.get_active(key_id))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._connection.close()
