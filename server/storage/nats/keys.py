"""API keys on NATS: the ``reelcast_keys`` KV bucket, shared by every API server of a deployment, so a key
created once (``reelcast keys create --store nats://…``) works on all of them, and a revocation reaches all of
them at their next check.

One entry per key, ``key.<id>``: a JSON record with the user, the admin flag, the SHA-256 of the whole key,
and the creation and revocation times. Same contract and same hashing as the SQLite store
(server/security/keys.py).
Creation uses the bucket's create (fails if the id exists), revocation a compare-and-set on the revision, so
two processes never overwrite each other.

Browser sessions (see server/security/keys.py) are ``session.<id>`` entries (user, key id, hash, times) and,
per user, ``sessions-of.<hex of the user name>``: the list of that user's session ids, oldest first, updated
with a compare-and-set, so that the per-user cap finds the user's oldest sessions without listing anyone
else's.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from reelcast.server.security.keys import (
    ApiKey,
    Session,
    check_user_name,
    hash_matches,
    key_id_of,
    new_raw_key,
    new_raw_session,
    session_id_of,
)
from reelcast.server.storage.nats.layout import KEYS_BUCKET, NatsConnection, retrying, stream_messages


def _record(key_id: str, value: bytes) -> tuple[ApiKey, dict[str, Any]]:
    fields: dict[str, Any] = json.loads(value)
    key = ApiKey(
        key_id,
        str(fields["user"]),
        bool(fields["admin"]),
        int(fields["create_time_us"]),
        fields.get("revoke_time_us") is not None,
    )
    return key, fields


class NatsKeyStore:
    """:class:`security.keys.ApiKeys` on the deployment's NATS connection (opened by its owner)."""

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection

    @property
    def _bucket(self) -> KeyValue:
        return self._connection.layout.keys

    async def _get(self, key_id: str) -> tuple[ApiKey, dict[str, Any], int] | None:
        bucket = self._bucket
        try:
            entry = await retrying(lambda: bucket.get(f"key.{key_id}"))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        key, fields = _record(key_id, entry.value)
        return key, fields, entry.revision or 0

    async def acreate(self, user: str, admin: bool = False) -> tuple[ApiKey, str]:
        check_user_name(user)
        while True:
            key_id, raw, digest = new_raw_key()
            now = time.time_ns() // 1000
            record = {"user": user, "admin": admin, "hash": digest, "create_time_us": now}
            try:
                await self._bucket.create(f"key.{key_id}", json.dumps(record).encode())
            except KeyWrongLastSequenceError:
                continue  # an id collision (1 in 4 billion): draw again
            return ApiKey(key_id, user, admin, now, False), raw

    async def alist(self) -> list[ApiKey]:
        # Read from the bucket's stream (history 1: one message per key), not with KeyValue.keys(), whose
        # watch can miss entries on a loaded machine.
        keys = []
        prefix = f"$KV.{KEYS_BUCKET}.key."
        async for message in stream_messages(self._connection.layout.js, f"KV_{KEYS_BUCKET}", f"{prefix}>"):
            if (message.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not message.data:
                continue
            keys.append(_record((message.subject or "").removeprefix(prefix), message.data)[0])
        return sorted(keys, key=lambda key: key.create_time_us)

    async def arevoke(self, key_id: str) -> bool:
        while True:
            current = await self._get(key_id)
            if current is None or current[0].revoked:
                return False
            _key, fields, revision = current
            fields["revoke_time_us"] = time.time_ns() // 1000
            try:
                await self._bucket.update(f"key.{key_id}", json.dumps(fields).encode(), last=revision)
                return True
            except KeyWrongLastSequenceError:
                continue  # changed meanwhile (revoked by another process?): look again

    async def ahas_admin(self) -> bool:
        return any(key.admin and not key.revoked for key in await self.alist())

    async def averify(self, raw_key: str) -> ApiKey | None:
        key_id = key_id_of(raw_key)
        if key_id is None:
            return None
        found = await self._get(key_id)
        stored = found[1]["hash"] if found is not None and not found[0].revoked else None
        if not hash_matches(stored, raw_key) or found is None:
            return None
        return found[0]

    async def aget_active(self, key_id: str) -> ApiKey | None:
        found = await self._get(key_id)
        return found[0] if found is not None and not found[0].revoked else None

    async def aopen_session(self, key: ApiKey, ttl_seconds: float, max_per_user: int) -> str:
        now = time.time_ns() // 1000
        expires = now + int(ttl_seconds * 1_000_000)
        while True:
            session_id, raw, digest = new_raw_session()
            record = {"user": key.user, "key_id": key.id, "hash": digest, "create_time_us": now}
            try:
                await self._bucket.create(
                    f"session.{session_id}", json.dumps({**record, "expire_time_us": expires}).encode()
                )
            except KeyWrongLastSequenceError:
                continue  # an id collision: draw again
            break
        for ended in await self._add_to_user(key.user, session_id, expires, now, max(1, max_per_user)):
            with contextlib.suppress(KeyNotFoundError):
                await self._bucket.delete(f"session.{ended}")
        return raw

    async def _add_to_user(self, user: str, session_id: str, expires: int, now: int, keep: int) -> list[str]:
        """Adds the session to the user's list; the ids that fell out of it (expired, or past ``keep``)."""
        name = f"sessions-of.{user.encode().hex()}"
        while True:
            try:
                entry = await retrying(lambda: self._bucket.get(name))
                listed: list[list[Any]] = json.loads(entry.value or b"[]")
                revision: int | None = entry.revision
            except KeyNotFoundError:
                listed, revision = [], None
            current = [item for item in listed if int(item[1]) >= now] + [[session_id, expires]]
            kept, ended = current[-keep:], current[:-keep]
            ended += [item for item in listed if int(item[1]) < now]
            value = json.dumps(kept).encode()
            try:
                if revision is None:
                    await self._bucket.create(name, value)
                else:
                    await self._bucket.update(name, value, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another login of this user meanwhile: read again
            return [str(item[0]) for item in ended]

    async def _session(self, session_id: str) -> tuple[Session, str] | None:
        bucket = self._bucket
        try:
            entry = await retrying(lambda: bucket.get(f"session.{session_id}"))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        fields: dict[str, Any] = json.loads(entry.value)
        session = Session(
            session_id,
            str(fields["user"]),
            str(fields["key_id"]),
            int(fields["create_time_us"]),
            int(fields["expire_time_us"]),
        )
        if session.expire_time_us < time.time_ns() // 1000:
            return None
        return session, str(fields["hash"])

    async def averify_session(self, raw_token: str) -> Session | None:
        session_id = session_id_of(raw_token)
        found = await self._session(session_id) if session_id is not None else None
        if not hash_matches(found[1] if found else None, raw_token) or found is None:
            return None
        return found[0]

    async def aget_session(self, session_id: str) -> Session | None:
        found = await self._session(session_id)
        return found[0] if found is not None else None

    async def aclose_session(self, session_id: str) -> bool:
        if await self._session(session_id) is None:
            return False
        with contextlib.suppress(KeyNotFoundError):
            await self._bucket.delete(f"session.{session_id}")
        return True

    def close(self) -> None:
        return None  # the connection belongs to the backend


STREAM_TOKEN_SECRET = "secret.stream-token"


async def shared_stream_token_secret(connection: NatsConnection) -> bytes:
    """The deployment's stream-token secret, in the keys bucket: made by the first API server that starts,
    read by every other, so a token minted by one server opens streams on all of them."""
    bucket = connection.layout.keys
    with contextlib.suppress(KeyWrongLastSequenceError):  # another server made it first
        await retrying(lambda: bucket.create(STREAM_TOKEN_SECRET, secrets.token_bytes(32)))
    entry = await retrying(lambda: bucket.get(STREAM_TOKEN_SECRET))
    return entry.value or b""
