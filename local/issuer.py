"""A local JWT issuer: one RSA key kept on disk, RS256 access tokens, and its JWKS over HTTP.

`make token` and `make run` use the same key file, issuer URL and audience, so a token printed by
one is accepted by the other whether or not the stack is running.
"""

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from werkzeug.wrappers import Request

from local import STATE_DIR, secret_file
from local.events import Response, json_response

DEFAULT_KEY_PATH = STATE_DIR / "jwt-key.pem"
DEFAULT_ISSUER_PORT = 3003
DEFAULT_ISSUER = f"http://127.0.0.1:{DEFAULT_ISSUER_PORT}"
DEFAULT_AUDIENCE = "serverless-tasks"
DEFAULT_SCOPE = "tasks/read tasks/write"
JWKS_PATH = "/.well-known/jwks.json"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
SAME_KID: Any = object()  # `token(kid=...)` default: this issuer's kid, whatever key signs


def generate_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_or_create_key(path: Path) -> RSAPrivateKey:
    """The PEM private key at `path`, created (mode 0600) on first use."""
    encoding = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key = serialization.load_pem_private_key(secret_file(path, lambda: generate_key().private_bytes(*encoding)), None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def public_jwk(key: RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64_uint(numbers.n), "e": b64_uint(numbers.e)}


def thumbprint(key: RSAPrivateKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's `kid`."""
    canonical = json.dumps(dict(sorted(public_jwk(key).items())), separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


class LocalIssuer:
    """Signs RS256 access tokens for the local stack and publishes the verifying JWKS."""

    def __init__(
        self,
        key_path: Path | None = DEFAULT_KEY_PATH,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        *,
        key: RSAPrivateKey | None = None,
    ):
        if key is None and key_path is None:
            raise ValueError("give a key_path or a key")
        self.key_path = key_path
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._key = key
        self._lock = threading.Lock()

    @property
    def key(self) -> RSAPrivateKey:
        with self._lock:
            if self._key is None and self.key_path is not None:
                self._key = load_or_create_key(self.key_path)
            assert self._key is not None  # noqa: S101 - __init__ refuses neither key nor key_path
            return self._key

    @property
    def kid(self) -> str:
        return thumbprint(self.key)

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**public_jwk(self.key), "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": DEFAULT_SCOPE.split(),
        }

    def claims(self, sub: str | None, *, expires_in: int = 3600, **overrides: Any) -> dict[str, Any]:
        """The claims of `token()`: iss, aud, sub, iat, nbf, exp, scope, token_use, jti; a None override drops one."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "scope": DEFAULT_SCOPE,
            "token_use": "access",
            "jti": b64(os.urandom(12)),
            **overrides,
        }
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        sub: str | None,
        *,
        expires_in: int = 3600,
        key: RSAPrivateKey | None = None,
        kid: str | None = SAME_KID,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        """A signed JWT for `sub`.

        Override any claim by keyword (`iss=`, `aud=`, `exp=`, ...; None removes it). `key=` signs with
        another RSA key (the header keeps this issuer's kid unless `kid=` says otherwise: kid=None drops it).
        """
        header = {"typ": "JWT", "kid": self.kid if kid is SAME_KID else kid}
        signing_key: Any = None if algorithm == "none" else key or self.key
        payload = self.claims(sub, expires_in=expires_in, **claims)
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers={k: v for k, v in header.items() if v})

    def bearer(self, sub: str, **kwargs: Any) -> dict[str, str]:
        """`{"authorization": "Bearer <token>"}` for a request as `sub`."""
        return {"authorization": f"Bearer {self.token(sub, **kwargs)}"}


def issuer_app(issuer: LocalIssuer) -> Callable[[Request], Response]:
    """The issuer's HTTP endpoints: discovery document and JWKS."""
    documents = {JWKS_PATH: issuer.jwks, OPENID_CONFIGURATION_PATH: issuer.openid_configuration}

    def app(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"message": "Method Not Allowed"})
        if request.path not in documents:
            return json_response(404, {"message": "Not Found"})
        return json_response(200, documents[request.path](), [("cache-control", "max-age=300")])

    return app


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_uint(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))
