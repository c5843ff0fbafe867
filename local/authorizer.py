"""The HTTP API JWT authorizer, as API Gateway runs it: keys from the issuer's JWKS, then the claims."""

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

from local.events import HttpRequest, HttpResponse
from local.specs import ApiRoute

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # what an HTTP API JWT authorizer accepts

# --- the JWT authorizer -------------------------------------------------------------------------------


class AuthorizerError(Exception):
    def __init__(self, status: int, description: str, *, scope: str = ""):
        super().__init__(description)
        self.status = status
        self.description = description
        self.scope = scope

    def response(self) -> HttpResponse:
        message = "Unauthorized" if self.status == 401 else "Forbidden"
        error = "invalid_token" if self.status == 401 else "insufficient_scope"
        challenge = f'Bearer scope="{self.scope}" error="{error}" error_description="{self.description}"'
        return HttpResponse.json(
            self.status,
            {"message": message},
            [("www-authenticate", challenge)],
        )


JwksSource = Callable[[bool], Mapping[str, Any]]  # refresh -> the JWKS document


class RemoteJwks:
    """The issuer's keys, found as API Gateway finds them: `{issuer}/.well-known/openid-configuration` -> jwks_uri.

    Cached for `lifespan` seconds; an unknown kid forces one refetch (at most every `cooldown` seconds).
    """

    def __init__(self, issuer: str, *, lifespan: float = 300, cooldown: float = 5, timeout: float = 3):
        self.issuer = issuer.rstrip("/")
        self._lifespan = lifespan
        self._cooldown = cooldown
        self._timeout = timeout
        self._lock = threading.Lock()
        self._jwks: Mapping[str, Any] | None = None
        self._fetched = 0.0

    def __call__(self, refresh: bool = False) -> Mapping[str, Any]:
        with self._lock:
            age = time.monotonic() - self._fetched
            if self._jwks is None or age > self._lifespan or (refresh and age > self._cooldown):
                configuration = self._get(f"{self.issuer}/.well-known/openid-configuration")
                self._jwks = self._get(str(configuration["jwks_uri"]))
                self._fetched = time.monotonic()
            return self._jwks

    def _get(self, url: str) -> Mapping[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an HTTP URL: {url}")
        with urllib.request.urlopen(url, timeout=self._timeout) as response:  # noqa: S310 - scheme checked above
            document: Mapping[str, Any] = json.load(response)
            return document


def static_jwks(jwks: Callable[[], Mapping[str, Any]]) -> JwksSource:
    """A JwksSource from a function such as `LocalIssuer.jwks` (no HTTP: for unit tests)."""

    def source(refresh: bool = False) -> Mapping[str, Any]:
        return jwks()

    return source


class JwtAuthorizer:
    """An HTTP API JWT authorizer: RSA signature (key by kid from the JWKS), iss, aud or client_id, exp, nbf, scopes."""

    def __init__(self, issuer: str, audience: str | Sequence[str], jwks: JwksSource):
        self.issuer = issuer.rstrip("/")
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        self._jwks = jwks

    def authorize(self, request: HttpRequest, route: ApiRoute) -> dict[str, Any]:
        """The event's `requestContext.authorizer`, or AuthorizerError (401 bad token, 403 missing scope)."""
        if route.authorizer is None:
            raise ValueError(f"{route.route_key} has no authorizer")
        value = (request.header(route.authorizer.identity_header) or "").strip()
        scheme, _, rest = value.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else value
        if not token:
            raise AuthorizerError(401, "the token is missing")
        claims = self._verify(token)
        granted = _token_scopes(claims)
        if route.scopes and not set(route.scopes) & set(granted):
            required = " ".join(route.scopes)
            raise AuthorizerError(403, f"expected scopes: [{required}]", scope=required)
        return {
            "jwt": {
                "claims": {name: _claim_text(value) for name, value in claims.items()},
                "scopes": list(granted) if route.scopes else None,
            }
        }

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthorizerError(401, "the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise AuthorizerError(401, f"signing method {algorithm} is invalid")
        key = self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[str(algorithm)],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthorizerError(401, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthorizerError(401, "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthorizerError(401, f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthorizerError(401, "the token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthorizerError(401, "the token is malformed") from None
        if claims.get("iss") != self.issuer:
            raise AuthorizerError(401, "the token does not have a valid issuer")
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(self.audiences) & {str(item) for item in audiences if item is not None}:
            raise AuthorizerError(401, "the token does not have a valid audience")
        return claims

    def _key(self, kid: Any) -> Any:
        if not kid:
            raise AuthorizerError(401, "the token has no kid header")
        for refresh in (False, True):
            try:
                jwks = self._jwks(refresh)
            except Exception:  # API Gateway answers 401 when the issuer's keys cannot be fetched
                raise AuthorizerError(401, "the issuer's keys cannot be fetched") from None
            for entry in jwks.get("keys", []):
                if entry.get("kid") == kid and entry.get("kty") == "RSA":
                    return jwt.PyJWK(dict(entry)).key
        raise AuthorizerError(401, f"no key with kid {kid} in the issuer's JWKS")


def _token_scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    raw = claims.get("scope", claims.get("scp", ""))
    return tuple(raw) if isinstance(raw, list) else tuple(str(raw).split())


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings, as API Gateway sends them (lists as `[a b]`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
