"""The HTTP API JWT authorizer, as API Gateway runs it: the key from the issuer's JWKS, then the claims."""

import json
import urllib.request
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from local.events import Response, json_response

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # what an HTTP API JWT authorizer accepts


class AuthorizerError(Exception):
    def __init__(self, description: str):
        super().__init__(description)
        self.description = description

    def response(self) -> Response:
        challenge = f'Bearer scope="" error="invalid_token" error_description="{self.description}"'
        return json_response(401, {"message": "Unauthorized"}, [("www-authenticate", challenge)])


def discovered_keys(issuer: str) -> jwt.PyJWKClient:
    """The issuer's keys, found as API Gateway finds them: `{issuer}/.well-known/openid-configuration` -> jwks_uri.

    Cached for five minutes; an unknown kid forces one refetch (at most every five seconds).
    """
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - scheme checked above
        configuration = json.load(response)
    return jwt.PyJWKClient(str(configuration["jwks_uri"]), lifespan=300, cooldown_duration=5, timeout=3)


class JwtAuthorizer:
    """An HTTP API JWT authorizer: RSA signature (key by kid from the JWKS), iss, aud or client_id, exp, nbf."""

    def __init__(self, issuer: str, audience: str, keys: jwt.PyJWKClient | None = None):
        """`keys`: where the signing keys come from (None: discovered from the issuer on first use)."""
        self.issuer = issuer  # compared with `iss` as written, as API Gateway does (a trailing slash counts)
        self.audience = audience
        self._keys = keys

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
        try:
            self._keys = self._keys or discovered_keys(self.issuer)
            self._keys.get_jwk_set()  # from its cache while it is fresh
        except Exception:  # API Gateway answers 401 when the issuer's keys cannot be fetched
            raise AuthorizerError("the issuer's keys cannot be fetched") from None
        try:
            key = self._keys.get_signing_key(str(kid)).key
        except Exception:  # no such kid, or a refetch for it failed or read no usable key set
            raise AuthorizerError(f"no key with kid {kid} in the issuer's JWKS") from None
        if not isinstance(key, RSAPublicKey):  # an EC, OKP, symmetric or private key verifies no RS* token
            raise AuthorizerError(f"the key with kid {kid} is not an RSA public key")
        return key


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings, as API Gateway sends them (lists as `[a b]`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
