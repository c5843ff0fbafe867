"""Bearer JWT verification, as the HTTP API's JWT authorizer does it, for any OIDC issuer.

The signing keys come from the issuer's JWKS, whose address OIDC discovery gives
(`<issuer>/.well-known/openid-configuration` -> `jwks_uri`). Both are cached; keys an hour old or an
unknown key id refresh them, at most once a minute whether the refresh works or fails, and the last good
keys stay in use when it fails. Only keys that can verify an accepted algorithm are kept.
An issuer that cannot be reached or answers nonsense is a 503 (retry), never a 500. The token's
`iss` must equal the configured issuer exactly (Auth0's ends with a slash), its `aud` (or Cognito's
`client_id`) must name the audience, and it must not have expired.
"""

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from core.domain.errors import ServiceUnavailable, Unauthorized

CLOCK_SKEW_SECONDS = 30
ALGORITHMS = ("RS256",)  # RSA only: usable_key keeps the keys that can verify these
KEYS_MAX_AGE_SECONDS = 3600
DISCOVERY_MAX_AGE_SECONDS = 24 * 3600
REFRESH_COOLDOWN_SECONDS = 60
FETCH_TIMEOUT_SECONDS = 3
MAX_DOCUMENT_BYTES = 1024 * 1024

FetchJson = Callable[[str], Any]


def fetch_json(url: str) -> Any:
    """GET a JSON document over HTTP(S); any failure is ServiceUnavailable."""
    if not url.startswith(("https://", "http://")):
        raise ServiceUnavailable("the token issuer's metadata names no HTTP address")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked
            body = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return json.loads(body)
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts and bad JSON
        raise ServiceUnavailable("the token issuer's keys cannot be fetched; retry shortly") from exc


class IssuerKeys:
    """The issuer's signing keys by key id: discovered, cached, refreshed, and kept when a refresh fails."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str = "",
        fetch: FetchJson = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._configured_jwks_url = jwks_url
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_url = jwks_url
        self._discovered_at = -float("inf")
        self._keys: dict[str, Any] = {}
        self._fetched_at = -float("inf")
        self._attempted_at = -float("inf")
        self._failure: ServiceUnavailable | None = None

    def key(self, kid: str) -> Any:
        with self._lock:
            now = self._clock()
            stale = now - self._fetched_at > KEYS_MAX_AGE_SECONDS
            if (stale or kid not in self._keys) and now - self._attempted_at > REFRESH_COOLDOWN_SECONDS:
                self._attempted_at = now  # a failed refresh starts the cool-down too: no fetch per request
                try:
                    self._refresh()
                    self._failure = None
                except ServiceUnavailable as failure:
                    self._failure = failure
            if kid not in self._keys and self._failure is not None:
                raise self._failure  # the issuer is in trouble: the key may be one it rotated in
            found = self._keys.get(kid)
        if found is None:
            raise Unauthorized("the bearer token is not valid: signature does not verify")
        return found

    def _refresh(self) -> None:
        document = self._fetch(self._jwks_address())
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ServiceUnavailable("the token issuer's key set is not a JWKS; retry shortly")
        keys = {}
        for entry in entries:
            key = usable_key(entry)
            if key is not None:
                keys[entry["kid"]] = key
        self._keys = keys
        self._fetched_at = self._clock()

    def _jwks_address(self) -> str:
        if self._configured_jwks_url:
            return self._configured_jwks_url
        if self._clock() - self._discovered_at > DISCOVERY_MAX_AGE_SECONDS:
            document = self._fetch(self._discovery_url)
            address = document.get("jwks_uri") if isinstance(document, dict) else None
            if not isinstance(address, str):
                raise ServiceUnavailable("the token issuer's OpenID configuration names no jwks_uri; retry shortly")
            self._jwks_url = address
            self._discovered_at = self._clock()
        return self._jwks_url


def usable_key(entry: Any) -> RSAPublicKey | None:
    """The public key of one JWKS entry if it can verify a token this service accepts, else None.

    Only RSA public keys for signing, whose `alg` (if any) is accepted: a token naming any other key
    (EC, OKP, symmetric, private, malformed) then finds no key and is a 401, rather than reaching PyJWT
    with a key of another type (a `TypeError`, not a `PyJWTError`).
    """
    if not (isinstance(entry, dict) and isinstance(entry.get("kid"), str) and entry.get("use", "sig") == "sig"):
        return None
    if entry.get("kty") != "RSA" or entry.get("alg", ALGORITHMS[0]) not in ALGORITHMS:
        return None
    try:
        key = jwt.PyJWK(entry).key
    except jwt.PyJWTError:
        return None
    return key if isinstance(key, RSAPublicKey) else None


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, keys: IssuerKeys, algorithms: tuple[str, ...] = ALGORITHMS):
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._algorithms = list(algorithms)

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms:
                raise Unauthorized("the token's signing algorithm is not accepted")
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise Unauthorized("the bearer token is not valid: it names no signing key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._keys.key(kid),
                algorithms=self._algorithms,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the bearer token is not valid: {_reason(exc)}") from None
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if self._audience not in audiences:
            raise Unauthorized("the bearer token is not valid: wrong audience")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise Unauthorized("the bearer token has no subject")
        return claims


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return "malformed"
