"""A local JWT issuer: one RSA key kept on disk, RS256 access tokens, and its JWKS over HTTP.

`make token` and `make run` use the same key file, issuer URL and audience, so a token printed by
one is accepted by the other whether or not the stack is running.

Tests also use it to make tokens that must be refused: `LocalIssuer.bad_tokens(sub)` (wrong key,
unknown kid, wrong issuer or audience, expired, not yet valid, `alg: none`, HS256 signed with the
public key, missing `sub`, garbage).
"""

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from local import STATE_DIR
from local.events import HttpRequest, HttpResponse

DEFAULT_KEY_PATH = STATE_DIR / "jwt-key.pem"
DEFAULT_ISSUER_PORT = 3003
DEFAULT_ISSUER = f"http://127.0.0.1:{DEFAULT_ISSUER_PORT}"
DEFAULT_AUDIENCE = "serverless-tasks"
DEFAULT_SCOPE = "tasks/read tasks/write"
JWKS_PATH = "/.well-known/jwks.json"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"


class _SameKid:
    """`token(kid=...)` default: this issuer's kid, whatever key signs."""


SAME_KID = _SameKid()


def generate_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_or_create_key(path: Path) -> RSAPrivateKey:
    """The PEM private key at `path`, created (mode 0600) on first use."""
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        os.link(temporary, path)  # first writer wins when two processes race to create the key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return load_or_create_key(path)


def public_jwk(key: RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}


def thumbprint(key: RSAPrivateKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's `kid`."""
    members = public_jwk(key)
    canonical = json.dumps({name: members[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


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
"""Every kind of token `LocalIssuer.bad_tokens()` makes: each must be refused by every entry point."""


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
        self._other_key: RSAPrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> RSAPrivateKey:
        with self._lock:
            if self._key is None:
                if self.key_path is None:  # pragma: no cover - __init__ refuses this
                    raise ValueError("no key and no key_path")
                self._key = load_or_create_key(self.key_path)
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
            "jti": _b64(os.urandom(12)),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        sub: str | None,
        *,
        expires_in: int = 3600,
        key: RSAPrivateKey | None = None,
        kid: str | _SameKid | None = SAME_KID,
        algorithm: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed JWT for `sub`.

        Override any claim by keyword (`iss=`, `aud=`, `exp=`, ...; None removes it). `key=` signs with
        another RSA key (the header keeps this issuer's kid unless `kid=` says otherwise: kid=None drops it).
        """
        header: dict[str, Any] = {"typ": "JWT", "kid": self.kid if isinstance(kid, _SameKid) else kid}
        header.update(headers or {})
        header = {name: value for name, value in header.items() if value is not None}
        payload = self.claims(sub, expires_in=expires_in, **claims)
        signing_key: Any = key or self.key
        if algorithm == "none":
            signing_key = None
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers=header)

    def bearer(self, sub: str, **kwargs: Any) -> dict[str, str]:
        """`{"authorization": "Bearer <token>"}` for a request as `sub`."""
        return {"authorization": f"Bearer {self.token(sub, **kwargs)}"}

    @property
    def other_key(self) -> RSAPrivateKey:
        """A second RSA key, not in the JWKS (made once per issuer object)."""
        with self._lock:
            if self._other_key is None:
                self._other_key = generate_key()
            return self._other_key

    def bad_tokens(self, sub: str) -> dict[str, str]:
        """Tokens for `sub` that every entry point must refuse, by what is wrong with them."""
        now = int(time.time())
        return {
            "wrong_key": self.token(sub, key=self.other_key),
            "unknown_kid": self.token(sub, key=self.other_key, kid=thumbprint(self.other_key)),
            "no_kid": self.token(sub, kid=None),
            "wrong_issuer": self.token(sub, iss="https://issuer.example.com"),
            "wrong_audience": self.token(sub, aud="some-other-app"),
            "no_audience": self.token(sub, aud=None),
            "expired": self.token(sub, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            "not_yet_valid": self.token(sub, iat=now, nbf=now + 3600, exp=now + 7200),
            "no_expiry": self.token(sub, exp=None),
            "alg_none": self.token(sub, algorithm="none"),
            "hs256_public_key": self.hs256_with_public_key(sub),
            "no_sub": self.token(None),
            "tampered": self.tampered(sub),
            "garbage": "not-a-jwt",
        }

    def hs256_with_public_key(self, sub: str) -> str:
        """The algorithm-confusion attack: HS256 "signed" with the issuer's public key PEM as the secret."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        secret = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{_b64_json(header)}.{_b64_json(self.claims(sub))}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def tampered(self, sub: str, *, as_sub: str = "mallory") -> str:
        """A valid token for `sub` whose payload is then changed to say `as_sub`: the signature no longer matches."""
        header, _, signature = self.token(sub).split(".")
        claims = self.claims(as_sub)
        return f"{header}.{_b64_json(claims)}.{signature}"


def issuer_app(issuer: LocalIssuer) -> Callable[[HttpRequest], HttpResponse]:
    """The issuer's HTTP endpoints: discovery document and JWKS."""

    def app(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return HttpResponse.json(405, {"message": "Method Not Allowed"})
        if request.raw_path == JWKS_PATH:
            return HttpResponse.json(200, issuer.jwks(), [("cache-control", "max-age=300")])
        if request.raw_path == OPENID_CONFIGURATION_PATH:
            return HttpResponse.json(200, issuer.openid_configuration(), [("cache-control", "max-age=300")])
        return HttpResponse.json(404, {"message": "Not Found"})

    return app


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64_json(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())
