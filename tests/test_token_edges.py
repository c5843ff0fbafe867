"""Whatever the issuer's JWKS holds and whatever a token's header says, verification answers 401 (or 503 when
the issuer is in trouble), never anything else, on every entry point: the CRUD function's URL, the export
app, and the HTTP API's JWT authorizer in front of the CRUD function. And a dead issuer is asked at most
once a minute, however many requests come.
"""

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

from core.domain.errors import ServiceUnavailable, Unauthorized
from core.http.tokens import REFRESH_COOLDOWN_SECONDS, IssuerKeys, TokenVerifier
from core.wiring import build_services
from local.authorizer import AuthorizerError, JwtAuthorizer
from local.gateway import HttpApiEmulator
from local.issuer import LocalIssuer, b64, generate_key
from streaming.app import create_app
from tests.bad_tokens import b64_json, other_key
from tests.local_support import FakeHandler, StaticJwks, api_spec, fake_function, request
from tests.support import ALICE, AUDIENCE, ISSUER, Backend, IssuerServer, export_settings, make_event

JWKS_PATH = "/.well-known/jwks.json"
SIGNER = LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())  # its key is in the JWKS; no token is signed by it


@pytest.fixture(scope="module")
def server() -> Iterator[IssuerServer]:
    running = IssuerServer()
    yield running
    running.stop()


@cache
def keys() -> dict[str, dict[str, Any]]:
    """One public (and one private) JWK of each kind an issuer might publish."""
    return {
        "rsa": RSAAlgorithm.to_jwk(generate_key().public_key(), as_dict=True),  # not the tokens' signer
        "rsa-private": RSAAlgorithm.to_jwk(generate_key(), as_dict=True),
        "ec": ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True),
        "okp": OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True),
        "oct": {"kty": "oct", "k": b64(b"a shared secret, 32 bytes long!!")},
        "signer": SIGNER.jwks()["keys"][0],
    }


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
KIDS = st.sampled_from([SIGNER.kid, "k1"])
KID_VALUES = st.one_of(KIDS, KIDS, KIDS, JSON)  # mostly a kid both the JWKS and the token use
FIELDS = ("kty", "kid", "alg", "use", "n", "e", "d", "crv", "x", "y", "k", "key_ops")
KNOWN_ENTRIES = st.builds(
    lambda kind, kid, changes: {**keys()[kind], "kid": kid, **changes},
    st.sampled_from(["signer", *sorted(keys())]),
    KID_VALUES,
    st.dictionaries(st.sampled_from(("alg", "use", "kty", "n", "e", "crv", "x")), JSON | st.text(), max_size=2)
    | st.just({}),
)
# A JWKS entry of any kind (RSA, EC, OKP, symmetric, private), often under the kid the token names, sometimes
# with fields changed or missing or of the wrong type, sometimes no key at all.
JWKS_ENTRIES = st.one_of(
    KNOWN_ENTRIES, KNOWN_ENTRIES, st.dictionaries(st.sampled_from(FIELDS), JSON | KID_VALUES), JSON
)
JWKS_DOCUMENTS = st.one_of(
    *[st.builds(lambda entries: {"keys": entries}, st.lists(JWKS_ENTRIES, max_size=4))] * 3, JSON
)
ALGORITHMS = st.one_of(st.sampled_from(["RS256", "RS384", "PS256", "ES256", "EdDSA", "HS256", "none", ""]), JSON)
HEADERS = st.one_of(
    st.fixed_dictionaries(
        {"alg": ALGORITHMS, "kid": KID_VALUES},
        optional={"typ": st.sampled_from(["JWT", "at+jwt"]) | JSON, "crit": JSON, "jku": JSON, "x5c": JSON},
    ),
    st.fixed_dictionaries({}, optional={"alg": ALGORITHMS, "kid": KID_VALUES, "typ": JSON}),
    JSON,
)
# Tokens no one may pass with: any header, the claims of a valid token, and a signature by a key that is in
# no JWKS (or none, or bytes); now and then no JWT at all.
TOKENS = st.one_of(
    st.builds(lambda header, how: signed(header, how), HEADERS, st.sampled_from(["rsa", "empty", "bytes"])),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
)
ISSUES_EXAMPLE = {"alg": "RS256", "typ": "JWT", "kid": "second"}  # RS256 naming the kid of an EC or OKP key


def signed(header: Any, how: str) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64_json(SIGNER.claims(ALICE))}"
    if how == "rsa":
        signature = other_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = b"" if how == "empty" else b"\x00" * 256
    return f"{signing_input}.{b64(signature)}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JWKS_DOCUMENTS, token=TOKENS)
@example(document={"keys": [{**keys()["ec"], "kid": "second"}]}, token=signed(ISSUES_EXAMPLE, "rsa"))
@example(document={"keys": [{**keys()["okp"], "kid": "second"}]}, token=signed(ISSUES_EXAMPLE, "rsa"))
def test_any_jwks_and_any_token_header_is_401_or_503_on_every_entry_point(
    server: IssuerServer, backend: Backend, document: Any, token: str
) -> None:
    server.documents[JWKS_PATH] = (200, json.dumps(document).encode())
    jwks_url = server.base + JWKS_PATH
    authorization = {"authorization": f"Bearer {token}"}

    # The CRUD function through its function URL (no authorizer: the app verifies)
    backend.settings = replace(backend.settings, jwks_url=jwks_url)
    function_url = backend.call(make_event("list-tasks", user=None, headers=authorization))
    assert function_url.status in (401, 503), function_url

    # The export app
    settings = export_settings(jwks_url)
    app = create_app(settings, build_services(settings, backend.dynamodb, lambda: backend.s3))
    export = TestClient(app, raise_server_exceptions=False).get("/tasks/export", headers=authorization)
    assert export.status_code in (401, 503), export.text

    # The HTTP API: its JWT authorizer refuses, and the CRUD function behind it is never called
    handler = FakeHandler()
    authorizer = JwtAuthorizer(ISSUER, AUDIENCE, jwt.PyJWKClient(jwks_url, cache_jwk_set=False))
    api = HttpApiEmulator(api_spec([("GET", "/tasks")]), {"Fn": fake_function(handler)}, authorizer)
    assert api(request("GET", "/tasks", headers=authorization)).status_code == 401
    assert handler.calls == []


CLAIMS = st.fixed_dictionaries(
    {},
    optional={name: JSON for name in ("sub", "iss", "aud", "client_id", "exp", "nbf", "iat", "jti")},
)


@settings(max_examples=300, deadline=None)
@given(header=st.dictionaries(st.sampled_from(["typ", "crit", "cty", "jku", "x5u", "b64"]), JSON), changes=CLAIMS)
def test_a_token_signed_by_the_issuer_with_any_claims_is_verified_or_refused_never_an_error(
    header: dict[str, Any], changes: dict[str, Any]
) -> None:
    claims = {**SIGNER.claims(ALICE), **changes}
    signing_input = f"{b64_json({**header, 'alg': 'RS256', 'kid': SIGNER.kid})}.{b64_json(claims)}"
    signature = SIGNER.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64(signature)}"
    verifier = TokenVerifier(ISSUER, AUDIENCE, IssuerKeys(ISSUER, "https://issuer.test/jwks", lambda _: SIGNER.jwks()))
    authorizer = JwtAuthorizer(ISSUER, AUDIENCE, StaticJwks(SIGNER))

    with contextlib.suppress(Unauthorized):  # anything else fails the test
        assert verifier.verify(token)["sub"]
    with contextlib.suppress(AuthorizerError):
        assert authorizer.authorize(f"Bearer {token}")["jwt"]["claims"]


@pytest.mark.parametrize("kind", ["ec", "okp", "oct", "rsa-private"])
def test_a_token_naming_a_key_of_another_type_is_401(kind: str) -> None:
    # The issue's example: a JWKS that also publishes an EC (or OKP, or symmetric) key, and a token with
    # alg RS256 naming that key's kid. PyJWT raised TypeError, which the verifier did not catch.
    issuer = SIGNER
    jwks = {"keys": [*issuer.jwks()["keys"], {**keys()[kind], "kid": "second"}]}
    verifier = TokenVerifier(ISSUER, AUDIENCE, IssuerKeys(ISSUER, "https://issuer.test/jwks", fetch=lambda url: jwks))

    with pytest.raises(Unauthorized):
        verifier.verify(signed(ISSUES_EXAMPLE, "rsa"))
    assert verifier.verify(issuer.token(ALICE))["sub"] == ALICE  # the issuer's own key still verifies


class DeadIssuer:
    """A fetcher that counts its calls and fails once `down` is set (as `fetch_json` fails: 503)."""

    def __init__(self, issuer: LocalIssuer):
        self.issuer = issuer
        self.fetches = 0
        self.down = False

    def __call__(self, url: str) -> Any:
        self.fetches += 1
        if self.down:
            raise ServiceUnavailable("the token issuer's keys cannot be fetched; retry shortly")
        return self.issuer.jwks()


def test_a_failed_refresh_starts_the_cool_down_too() -> None:
    issuer = LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())
    fetcher, clock = DeadIssuer(issuer), [0.0]
    verifier = TokenVerifier(
        ISSUER, AUDIENCE, IssuerKeys(ISSUER, "https://issuer.test/jwks", fetcher, lambda: clock[0])
    )
    token = issuer.token(ALICE)
    verifier.verify(token)
    assert fetcher.fetches == 1

    # Given keys over an hour old and an issuer that is down
    fetcher.down = True
    clock[0] += 2 * 3600

    # When a hundred requests come within the cool-down, they are served from the cached keys after one fetch
    for _ in range(100):
        assert verifier.verify(token)["sub"] == ALICE
        clock[0] += (REFRESH_COOLDOWN_SECONDS - 1) / 100
    assert fetcher.fetches == 2

    # And once the cool-down has passed, one more attempt, then quiet again
    clock[0] += 2
    for _ in range(10):
        assert verifier.verify(token)["sub"] == ALICE
    assert fetcher.fetches == 3


def test_an_issuer_down_from_the_start_is_asked_once_a_minute_and_every_request_is_503() -> None:
    issuer = LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())
    fetcher, clock = DeadIssuer(issuer), [0.0]
    fetcher.down = True
    verifier = TokenVerifier(
        ISSUER, AUDIENCE, IssuerKeys(ISSUER, "https://issuer.test/jwks", fetcher, lambda: clock[0])
    )

    for _ in range(20):
        with pytest.raises(ServiceUnavailable):
            verifier.verify(issuer.token(ALICE))
    assert fetcher.fetches == 1

    fetcher.down = False
    clock[0] += REFRESH_COOLDOWN_SECONDS + 1
    assert verifier.verify(issuer.token(ALICE))["sub"] == ALICE
    assert fetcher.fetches == 2
