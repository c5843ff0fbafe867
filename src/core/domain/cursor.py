"""Opaque pagination cursors: a signed, expiring position bound to its owner and its filters."""

import base64
import binascii
import hashlib
import hmac
import json
import time

from core.domain.errors import InvalidCursor

Position = dict[str, str]
CURSOR_TTL_SECONDS = 24 * 3600


class CursorCodec:
    def __init__(self, secret: str, ttl_seconds: int = CURSOR_TTL_SECONDS):
        self._key = hashlib.sha256(b"serverless-tasks/cursor\0" + secret.encode()).digest()
        self._ttl = ttl_seconds

    def encode(self, position: Position, owner: str, fingerprint: str) -> str:
        payload = json.dumps({"k": position, "e": int(time.time()) + self._ttl}, separators=(",", ":"))
        body = _b64encode(payload.encode())
        return f"{body}.{self._sign(body, owner, fingerprint)}"

    def decode(self, token: str, owner: str, fingerprint: str) -> Position:
        body, _, signature = token.partition(".")
        if not body or not signature or len(token) > 2048:
            raise InvalidCursor("the cursor is malformed")
        if not hmac.compare_digest(signature, self._sign(body, owner, fingerprint)):
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

    def _sign(self, body: str, owner: str, fingerprint: str) -> str:
        message = "\0".join((body, owner, fingerprint)).encode()
        return _b64encode(hmac.new(self._key, message, hashlib.sha256).digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
