"""Time-ordered identifiers (ULID: 48-bit millisecond time + 80 random bits, Crockford base32)."""

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def is_valid(value: str) -> bool:
    """Whether `value` could be an id this service made (anything else names nothing)."""
    return len(value) == 26 and all(ch in _ALPHABET for ch in value) and value[0] <= "7"
