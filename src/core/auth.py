"""Who is calling: the `sub` of a verified bearer JWT, and nothing else.

Behind the HTTP API the JWT authorizer has verified the token and put its claims in the event.
Through a function URL (or the streaming app) there is no authorizer, so the token is verified
here: signature against the issuer's JWKS (cached), algorithm allow-list, issuer, audience, expiry.
"""

from collections.abc import Mapping
from functools import cache
from typing import Any

import jwt

from core.config import get_settings
from core.errors import ServiceUnavailable, Unauthorized

CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 3600


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, jwks_url: str, algorithms: tuple[str, ...]):
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=3)

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms:
                raise Unauthorized("the token's signing algorithm is not accepted")
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable("the token issuer's keys cannot be fetched; retry shortly") from exc
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
    if isinstance(exc, jwt.InvalidSignatureError | jwt.PyJWKClientError):
        return "signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return "malformed"


@cache
def token_verifier() -> TokenVerifier:
    settings = get_settings()
    return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, settings.jwks_url, settings.jwt_algorithms)


def bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


def caller_from_headers(headers: Mapping[str, str]) -> str:
    """The verified `sub` of the bearer token in these request headers."""
    return str(token_verifier().verify(bearer_token(headers))["sub"])


def caller_from_event(event: Mapping[str, Any]) -> str:
    """The caller of an HTTP API (payload 2.0) or function URL event."""
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    if subject:
        return str(subject)
    return caller_from_headers(event.get("headers") or {})
