"""The HTTP API JWT authorizer, as API Gateway runs it: the key from the issuer's JWKS, then the claims."""

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from local.events import HttpResponse

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # what an HTTP API JWT authorizer accepts
JwksSource = Callable[[bool], Mapping[str, Any]]  # refresh -> the JWKS document


class AuthorizerError(Exception):
    def __init__(self, description: str):
        super().__init__(description)
        self.description = description

    def response(self) -> HttpResponse:
        challenge = f'Bearer scope="" error="invalid_token" error_description="{self.description}"'
        return HttpResponse.json(401, {"message": "Unauthorized"}, [("www-authenticate", challenge)])


class RemoteJwks:
    """The issuer's keys, found as API Gateway finds them: `{issuer}/.well-known/openid-configuration` -> jwks_uri.

    Cached for `lifespan` seconds; an unknown kid forces one refetch (at most every `cooldown` seconds).
    """

    def __init__(self, issuer: str, *, lifespan: float = 300, cooldown: float = 5):
        self.issuer = issuer.rstrip("/")
        self._lifespan, self._cooldown = lifespan, cooldown
        self._lock = threading.Lock()
        self._jwks: Mapping[str, Any] = {}
        self._fetched = -lifespan

    def __call__(self, refresh: bool = False) -> Mapping[str, Any]:
        with self._lock:
            age = time.monotonic() - self._fetched
            if age > self._lifespan or (refresh and age > self._cooldown):
                configuration = self._get(f"{self.issuer}/.well-known/openid-configuration")
                self._jwks = self._get(str(configuration["jwks_uri"]))
                self._fetched = time.monotonic()
            return self._jwks

    @staticmethod
    def _get(url: str) -> Mapping[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an HTTP URL: {url}")
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - scheme checked above
            document: Mapping[str, Any] = json.load(response)
            return document


class JwtAuthorizer:
    """An HTTP API JWT authorizer: RSA signature (key by kid from the JWKS), iss, aud or client_id, exp, nbf."""

    def __init__(self, issuer: str, audience: str, jwks: JwksSource):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._jwks = jwks

    def authorize(self, header_value: str | None) -> dict[str, Any]:
        """The event's `requestContext.authorizer` for the identity header's value, or AuthorizerError."""
        value = (header_value or "").strip()
        scheme, _, rest = value.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else value
        if not token:
            raise AuthorizerError("the token is missing")
        claims = self._verify(token)
        return {"jwt": {"claims": {name: _claim_text(value) for name, value in claims.items()}, "scopes": None}}

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthorizerError("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise AuthorizerError(f"signing method {algorithm} is invalid")
        key = self._key(header.get("kid"))
        options = {"verify_aud": False, "verify_iss": False, "require": ["exp"]}
        try:
            claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=[str(algorithm)], options=options)
        except jwt.ExpiredSignatureError:
            raise AuthorizerError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthorizerError("the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthorizerError(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthorizerError("the token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthorizerError("the token is malformed") from None
        if claims.get("iss") != self.issuer:
            raise AuthorizerError("the token does not have a valid issuer")
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        if self.audience not in (audience if isinstance(audience, list) else [audience]):
            raise AuthorizerError("the token does not have a valid audience")
        return claims

    def _key(self, kid: Any) -> Any:
        if not kid:
            raise AuthorizerError("the token has no kid header")
        for refresh in (False, True):
            try:
                jwks = self._jwks(refresh)
            except Exception:  # API Gateway answers 401 when the issuer's keys cannot be fetched
                raise AuthorizerError("the issuer's keys cannot be fetched") from None
            for entry in jwks.get("keys", []):
                if entry.get("kid") == kid and entry.get("kty") == "RSA":
                    return jwt.PyJWK(dict(entry)).key
        raise AuthorizerError(f"no key with kid {kid} in the issuer's JWKS")


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings, as API Gateway sends them (lists as `[a b]`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
