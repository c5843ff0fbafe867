"""Opaque pagination cursors: a signed, expiring position bound to its owner and its filters.

Cursors are signed with the current key and checked against every key still accepted (the
previous one too, while a rotation is under way), so a rotation never breaks a listing midway.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Protocol

from core.domain.errors import InvalidCursor

Position = dict[str, str]
CURSOR_TTL_SECONDS = 24 * 3600
MAX_CURSOR_LENGTH = 2048


class CursorKeys(Protocol):
    def accepted(self, refresh: bool = False) -> Iterator[str]:
        """The secrets a cursor may be signed with, the signing one first; fetched as they are iterated.

        `refresh`: none of the last ones verified a cursor, so look again if they may be stale.
        """
        ...


class FixedKeys:
    """Secrets given once (tests, the local stack, benchmarks): the first signs, all verify."""

    def __init__(self, *secrets: str):
        if not secrets:
            raise ValueError("at least one cursor secret is needed")
        self._secrets = secrets

    def accepted(self, refresh: bool = False) -> Iterator[str]:
        return iter(() if refresh else self._secrets)


class CursorCodec:
    def __init__(self, keys: CursorKeys | str, ttl_seconds: int = CURSOR_TTL_SECONDS):
        self._keys = FixedKeys(keys) if isinstance(keys, str) else keys
        self._ttl = ttl_seconds

    def encode(self, position: Position, owner: str, fingerprint: str) -> str:
        payload = json.dumps({"k": position, "e": int(time.time()) + self._ttl}, separators=(",", ":"))
        body = _b64encode(payload.encode())
        signing_secret = next(self._keys.accepted())
        return f"{body}.{_sign(signing_secret, body, owner, fingerprint)}"

    def decode(self, token: str, owner: str, *fingerprints: str) -> Position:
        """The position of a cursor signed for `owner` and any of `fingerprints` (the current one first)."""
        body, _, signature = token.partition(".")
        if not body or not signature or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("the cursor is malformed")
        if not (
            self._verifies(signature, body, owner, fingerprints, refresh=False)
            or self._verifies(signature, body, owner, fingerprints, refresh=True)
        ):
            raise InvalidCursor("the cursor is not valid for this caller and these filters")
        try:
            payload = json.loads(_b64decode(body))
            position, expires = payload["k"], payload["e"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidCursor("the cursor is malformed") from None
        if not isinstance(expires, int) or expires < time.time():
            raise InvalidCursor("the cursor has expired; start again without a cursor")
        if not isinstance(position, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in position.items()
        ):
            raise InvalidCursor("the cursor is malformed")
        return position

    def _verifies(self, signature: str, body: str, owner: str, fingerprints: tuple[str, ...], *, refresh: bool) -> bool:
        return any(
            hmac.compare_digest(signature, _sign(secret, body, owner, fingerprint))
            for secret in self._keys.accepted(refresh)
            for fingerprint in fingerprints
        )


def _sign(secret: str, body: str, owner: str, fingerprint: str) -> str:
    message = "\0".join((body, owner, fingerprint)).encode()
    return _b64encode(hmac.new(_derived_key(secret), message, hashlib.sha256).digest())


@lru_cache(maxsize=8)
def _derived_key(secret: str) -> bytes:
    return hashlib.sha256(b"serverless-tasks/cursor\0" + secret.encode()).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
