"""API keys: created by ``reelcast keys create``, stored only as a hash, checked on every call.

A key reads ``rck_<id>_<secret>``. The id (8 hex digits) is public: ``keys list`` shows it and ``keys revoke``
takes it, and it finds the row without scanning. The secret is 32 random bytes (256 bits). The table keeps a
SHA-256 of the whole key and compares it with ``hmac.compare_digest``.

Intentional divergence from password storage: no slow KDF (bcrypt, scrypt). A slow hash protects guessable
secrets; a 256-bit random secret cannot be guessed, and a slow hash on every RPC would cost more than it buys.

The store follows the job store: a table in the same SQLite database (WAL allows the server and the CLI to use
it at once), its own connection, statements on one thread. On NATS, keys live in the ``reelcast_keys`` KV
bucket that every API server shares (server/storage/nats/keys.py); both implement :class:`ApiKeys`.

Browser sessions live beside the keys they were opened with, made the same way: a session token reads
``rcs_<id>_<secret>`` and only its SHA-256 is stored, with the user, the key id and an expiry. Every API
server of a deployment checks them, so a session works on any bridge and outlives bridge restarts. A
session ends with its key (checked on every use), on logout, at its expiry, or when its user opens more
than ``max_per_user``: the user's oldest session ends, and nobody else's.

Intentional divergence from signed cookies (which a bridge could check without a store): the per-user cap
needs the server to know each user's sessions anyway, and a stored, hashed token is then all a session needs.
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
SESSION_PREFIX = "rcs"
_SESSION = re.compile(r"^rcs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
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
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    key_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    create_time_us INTEGER NOT NULL,
    expire_time_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user, create_time_us);
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    user: str
    admin: bool
    create_time_us: int
    revoked: bool


@dataclass(frozen=True)
class Session:
    """A stored browser session, without its secret."""

    id: str
    user: str
    key_id: str
    create_time_us: int
    expire_time_us: int


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


def session_id_of(raw_token: str) -> str | None:
    """The id of a well-formed session token, else None."""
    match = _SESSION.match(raw_token)
    return match.group(1) if match else None


def new_raw_session() -> tuple[str, str, str]:
    """A fresh session token: (its id, the raw token, the hash to store)."""
    session_id = secrets.token_hex(8)
    raw = f"{SESSION_PREFIX}_{session_id}_{secrets.token_urlsafe(32)}"
    return session_id, raw, _hash(raw)


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

    async def aopen_session(self, key: ApiKey, ttl_seconds: float, max_per_user: int) -> str:
        """A new session of ``key``'s user, valid for ``ttl_seconds``: its raw token. The user's oldest
        sessions beyond ``max_per_user`` end (expired ones first go anyway)."""

    async def averify_session(self, raw_token: str) -> Session | None:
        """The session if ``raw_token`` is one that has neither expired nor ended, else None. (Whether its
        key is still valid is the caller's check.)"""

    async def aget_session(self, session_id: str) -> Session | None:
        """The unexpired, not ended session with this id, else None."""

    async def aclose_session(self, session_id: str) -> bool:
        """Ends the session; False if there was none."""

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

    def open_session(self, key: ApiKey, ttl_seconds: float, max_per_user: int) -> str:
        now = time.time_ns() // 1000
        with self._lock:
            while True:
                session_id, raw, digest = new_raw_session()
                try:
                    self._connection.execute(
                        "INSERT INTO sessions (id, user, key_id, hash, create_time_us, expire_time_us)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (session_id, key.user, key.id, digest, now, now + int(ttl_seconds * 1_000_000)),
                    )
                except sqlite3.IntegrityError:
                    continue  # an id collision: draw again
                break
            self._connection.execute(
                "DELETE FROM sessions WHERE user = ? AND expire_time_us < ?", (key.user, now)
            )
            # The user's newest ``max_per_user`` stay; older ones end (this user's only).
            self._connection.execute(
                "DELETE FROM sessions WHERE user = ? AND id NOT IN"
                " (SELECT id FROM sessions WHERE user = ? ORDER BY create_time_us DESC, rowid DESC LIMIT ?)",
                (key.user, key.user, max(1, max_per_user)),
            )
        return raw

    def _session_row(self, session_id: str) -> tuple[Session, str] | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT user, key_id, hash, create_time_us, expire_time_us FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
        if row is None or row[4] < time.time_ns() // 1000:
            return None
        return Session(session_id, row[0], row[1], row[3], row[4]), row[2]

    def verify_session(self, raw_token: str) -> Session | None:
        session_id = session_id_of(raw_token)
        found = self._session_row(session_id) if session_id is not None else None
        if not hash_matches(found[1] if found else None, raw_token) or found is None:
            return None
        return found[0]

    def get_session(self, session_id: str) -> Session | None:
        found = self._session_row(session_id)
        return found[0] if found is not None else None

    def close_session(self, session_id: str) -> bool:
        with self._lock:
            cursor = self._connection.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return cursor.rowcount == 1

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

    async def aopen_session(self, key: ApiKey, ttl_seconds: float, max_per_user: int) -> str:
        return await self._run(lambda: self.open_session(key, ttl_seconds, max_per_user))

    async def averify_session(self, raw_token: str) -> Session | None:
        return await self._run(lambda: self.verify_session(raw_token))

    async def aget_session(self, session_id: str) -> Session | None:
        return await self._run(lambda: self.get_session(session_id))

    async def aclose_session(self, session_id: str) -> bool:
        return await self._run(lambda: self.close_session(session_id))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._connection.close()
