"""Who is calling: the `sub` of a verified bearer JWT, and nothing else.

Behind the HTTP API the JWT authorizer has verified the token and put its claims in the event.
Through a function URL (or the streaming app) there is no authorizer, so the token is verified
here, with `core.http.tokens`.
"""

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.config import ApiSettings
from core.domain.errors import Unauthorized

if TYPE_CHECKING:
    from core.http.tokens import TokenVerifier

MAX_TOKEN_LENGTH = 16 * 1024  # far above any real JWT; longer headers are refused unread


class Authenticator:
    def __init__(self, settings: ApiSettings):
        self._settings = settings

    @cached_property
    def _verifier(self) -> "TokenVerifier":
        # PyJWT and cryptography load only on the paths that verify tokens themselves:
        # requests behind the HTTP API authorizer never need them, so their cold start skips them.
        from core.http.tokens import IssuerKeys, TokenVerifier

        settings = self._settings
        keys = IssuerKeys(settings.jwt_issuer, settings.jwks_url)
        return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, keys)

    def caller_from_headers(self, headers: Mapping[str, str]) -> str:
        """The verified `sub` of the bearer token in these request headers."""
        return str(self._verifier.verify(bearer_token(headers))["sub"])

    def caller_from_event(self, event: Mapping[str, Any]) -> str:
        """The caller of an HTTP API (payload 2.0) or function URL event."""
        context = event.get("requestContext") or {}
        claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
        subject = claims.get("sub")
        if subject:
            return str(subject)
        return self.caller_from_headers(event.get("headers") or {})


def bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise Unauthorized("the bearer token is not valid: malformed")
    return token
