"""Function-URL and export auth accept whatever OIDC issuer JwtIssuer names, as the HTTP API authorizer does.

Three local issuers shaped like the real ones: Cognito (no trailing slash, JWKS at the usual path), Auth0
(issuer with a trailing slash) and Okta/Entra (jwks_uri on a path of its own). The keys are found through
OIDC discovery; a broken issuer is a 503 with Retry-After, and the last good keys outlive it.
"""

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from core.domain.errors import ServiceUnavailable, Unauthorized
from core.http.tokens import IssuerKeys, TokenVerifier
from local.issuer import LocalIssuer, generate_key
from tests.support import ALICE, AUDIENCE, Backend, IssuerServer, make_event

SHAPES = {
    # name: (issuer path, discovery path, jwks path)
    "cognito": (
        "/us-east-1_Example",
        "/us-east-1_Example/.well-known/openid-configuration",
        "/us-east-1_Example/.well-known/jwks.json",
    ),
    "auth0": ("/", "/.well-known/openid-configuration", "/.well-known/jwks.json"),
    "okta": ("/oauth2/default", "/oauth2/default/.well-known/openid-configuration", "/oauth2/default/v1/keys"),
    "entra": ("/tenant-id/v2.0", "/tenant-id/v2.0/.well-known/openid-configuration", "/tenant-id/discovery/v2.0/keys"),
}


@pytest.fixture
def server() -> Iterator[IssuerServer]:
    running = IssuerServer()
    yield running
    running.stop()


def publish(server: IssuerServer, shape: str) -> tuple[str, LocalIssuer]:
    """Serve an issuer of this shape; its issuer URL and a signer whose tokens carry exactly that `iss`."""
    issuer_path, discovery_path, jwks_path = SHAPES[shape]
    issuer_url = server.base + issuer_path
    signer = LocalIssuer(None, issuer_url, AUDIENCE, key=generate_key())
    server.documents[discovery_path] = (
        200,
        json.dumps({"issuer": issuer_url, "jwks_uri": server.base + jwks_path}).encode(),
    )
    server.documents[jwks_path] = (200, json.dumps(signer.jwks()).encode())
    return issuer_url, signer


def verifier(issuer_url: str) -> TokenVerifier:
    return TokenVerifier(issuer_url, AUDIENCE, IssuerKeys(issuer_url))


@pytest.mark.parametrize("shape", SHAPES)
def test_tokens_of_every_issuer_shape_verify_through_discovery(server: IssuerServer, shape: str) -> None:
    issuer_url, signer = publish(server, shape)

    claims = verifier(issuer_url).verify(signer.token(ALICE, iss=issuer_url))

    assert claims["sub"] == ALICE
    assert server.hits[SHAPES[shape][1]] == 1  # discovered once, not guessed


@pytest.mark.parametrize("shape", SHAPES)
def test_the_issuer_is_compared_exactly(server: IssuerServer, shape: str) -> None:
    issuer_url, signer = publish(server, shape)
    other = issuer_url[:-1] if issuer_url.endswith("/") else issuer_url + "/"

    with pytest.raises(Unauthorized):
        verifier(issuer_url).verify(signer.token(ALICE, iss=other))


@pytest.mark.parametrize(
    ("path_kind", "status", "body"),
    [
        ("discovery", 500, b"oops"),
        ("discovery", 200, b"<html>not json</html>"),
        ("discovery", 200, b'{"issuer": "x"}'),
        ("jwks", 503, b""),
        ("jwks", 200, b"[]"),
        ("jwks", 200, b"{not json"),
    ],
)
def test_a_broken_issuer_is_503_never_500(server: IssuerServer, path_kind: str, status: int, body: bytes) -> None:
    issuer_url, signer = publish(server, "okta")
    server.documents[SHAPES["okta"][1 if path_kind == "discovery" else 2]] = (status, body)

    with pytest.raises(ServiceUnavailable):
        verifier(issuer_url).verify(signer.token(ALICE, iss=issuer_url))


def test_an_unreachable_issuer_is_503() -> None:
    with pytest.raises(ServiceUnavailable):
        verifier("http://127.0.0.1:9/issuer").verify(
            LocalIssuer(None, "http://127.0.0.1:9/issuer", AUDIENCE, key=generate_key()).token(ALICE)
        )


def test_the_last_good_keys_outlive_a_broken_refresh(server: IssuerServer) -> None:
    issuer_url, signer = publish(server, "auth0")
    clock = [0.0]
    checker = TokenVerifier(issuer_url, AUDIENCE, IssuerKeys(issuer_url, clock=lambda: clock[0]))
    token = signer.token(ALICE, iss=issuer_url)
    checker.verify(token)

    # When the issuer breaks and the cached keys are past their age
    server.documents[SHAPES["auth0"][2]] = (500, b"down")
    clock[0] += 10 * 3600

    assert checker.verify(token)["sub"] == ALICE


def test_an_unknown_key_id_refreshes_the_keys_once_a_minute_at_most(server: IssuerServer) -> None:
    issuer_url, signer = publish(server, "cognito")
    clock = [0.0]
    checker = TokenVerifier(issuer_url, AUDIENCE, IssuerKeys(issuer_url, clock=lambda: clock[0]))
    checker.verify(signer.token(ALICE, iss=issuer_url))
    jwks_path = SHAPES["cognito"][2]

    for _ in range(5):
        with pytest.raises(Unauthorized):
            checker.verify(signer.token(ALICE, iss=issuer_url, kid="rotated-away"))
    assert server.hits[jwks_path] == 1
    clock[0] += 61
    with pytest.raises(Unauthorized):
        checker.verify(signer.token(ALICE, iss=issuer_url, kid="rotated-away"))
    assert server.hits[jwks_path] == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_the_crud_function_url_serves_callers_of_any_issuer_shape(
    server: IssuerServer, backend: Backend, shape: str
) -> None:
    issuer_url, signer = publish(server, shape)
    backend.settings = replace(backend.settings, jwt_issuer=issuer_url, jwks_url="")
    headers = {"authorization": f"Bearer {signer.token(ALICE, iss=issuer_url)}"}

    response = backend.call(make_event("list-tasks", user=None, headers=headers))

    assert response.status == 200, response


def test_the_crud_function_url_answers_503_when_the_issuer_is_broken(server: IssuerServer, backend: Backend) -> None:
    issuer_url, signer = publish(server, "entra")
    server.documents[SHAPES["entra"][1]] = (502, b"bad gateway")
    backend.settings = replace(backend.settings, jwt_issuer=issuer_url, jwks_url="")
    headers = {"authorization": f"Bearer {signer.token(ALICE, iss=issuer_url)}"}

    response = backend.call(make_event("list-tasks", user=None, headers=headers))

    assert response.status == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"
