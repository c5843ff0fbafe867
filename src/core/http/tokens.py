"""Bearer JWT verification: signature against the issuer's JWKS (cached), algorithm allow-list,
issuer, audience (`aud`, or Cognito's `client_id`), expiry."""

from typing import Any

import jwt

from core.domain.errors import ServiceUnavailable, Unauthorized

CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 3600
ALGORITHMS = ("RS256",)


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, jwks_url: str, algorithms: tuple[str, ...] = ALGORITHMS):
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
