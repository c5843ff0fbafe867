"""Tokens every entry point must refuse, by what is wrong with them (made with a `LocalIssuer`'s key)."""

import hashlib
import hmac
import json
import time
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from local.issuer import LocalIssuer, b64, generate_key, thumbprint

BAD_TOKEN_KINDS = (
    "wrong_key",
    "unknown_kid",
    "no_kid",
    "wrong_issuer",
    "wrong_audience",
    "no_audience",
    "expired",
    "not_yet_valid",
    "no_expiry",
    "alg_none",
    "hs256_public_key",
    "no_sub",
    "tampered",
    "garbage",
)


@cache
def other_key() -> RSAPrivateKey:
    """A second RSA key, in no issuer's JWKS."""
    return generate_key()


def bad_tokens(issuer: LocalIssuer, sub: str) -> dict[str, str]:
    """One token of each of BAD_TOKEN_KINDS for `sub`."""
    now = int(time.time())
    return {
        "wrong_key": issuer.token(sub, key=other_key()),
        "unknown_kid": issuer.token(sub, key=other_key(), kid=thumbprint(other_key())),
        "no_kid": issuer.token(sub, kid=None),
        "wrong_issuer": issuer.token(sub, iss="https://issuer.example.com"),
        "wrong_audience": issuer.token(sub, aud="some-other-app"),
        "no_audience": issuer.token(sub, aud=None),
        "expired": issuer.token(sub, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not_yet_valid": issuer.token(sub, iat=now, nbf=now + 3600, exp=now + 7200),
        "no_expiry": issuer.token(sub, exp=None),
        "alg_none": issuer.token(sub, algorithm="none"),
        "hs256_public_key": hs256_with_public_key(issuer, sub),
        "no_sub": issuer.token(None),
        "tampered": tampered(issuer, sub),
        "garbage": "not-a-jwt",
    }


def hs256_with_public_key(issuer: LocalIssuer, sub: str) -> str:
    """The algorithm-confusion attack: HS256 "signed" with the issuer's public key PEM as the secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64_json(header)}.{b64_json(issuer.claims(sub))}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def tampered(issuer: LocalIssuer, sub: str, *, as_sub: str = "mallory") -> str:
    """A valid token for `sub` whose payload then says `as_sub`: the signature no longer matches."""
    header, _, signature = issuer.token(sub).split(".")
    return f"{header}.{b64_json(issuer.claims(as_sub))}.{signature}"


def b64_json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())
