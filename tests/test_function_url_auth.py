"""The CRUD function called through its function URL: no authorizer, so the app verifies the token."""

import io
import logging
from dataclasses import replace
from typing import Any

import pytest

from local.issuer import LocalIssuer
from tests.bad_tokens import BAD_TOKEN_KINDS, bad_tokens
from tests.support import ALICE, BOB, Backend, HttpResponse, Invoke

ROUTES = ("create-task", "list-tasks", "get-task", "patch-task", "replace-task", "delete-task")


def as_function_url(invoke: Invoke, name: str, token: str | None, **changes: Any) -> HttpResponse:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    drop = ("authorization",) if token is None else ()
    return invoke(name, user=None, headers=headers, drop_headers=drop, **changes)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_tokens_are_refused_on_every_route(
    invoke: Invoke, issuer: LocalIssuer, create: Any, route: str, kind: str
) -> None:
    task = create(user=ALICE)

    response = as_function_url(invoke, route, bad_tokens(issuer, ALICE)[kind], task_id=_task_id(route, task))

    assert response.status == 401, response
    assert response.headers["content-type"] == "application/problem+json"
    assert invoke("get-task", task_id=task["taskId"]).json() == task


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc"])
def test_missing_or_malformed_authorization_is_401(invoke: Invoke, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    response = invoke(
        "list-tasks", user=None, headers=headers, drop_headers=("authorization",) if header is None else ()
    )

    assert response.status == 401
    assert "bearer" in response.headers["www-authenticate"].lower()


def test_valid_token_is_served_and_owner_is_its_sub(invoke: Invoke, issuer: LocalIssuer) -> None:
    created = as_function_url(invoke, "create-task", issuer.token(ALICE), body={"title": "via url"})
    assert created.status == 201, created
    assert created.json()["userId"] == ALICE

    listed = as_function_url(invoke, "list-tasks", issuer.token(ALICE), query={})
    assert [task["title"] for task in listed.json()["items"]] == ["via url"]

    other = as_function_url(invoke, "get-task", issuer.token(BOB), task_id=created.json()["taskId"])
    assert other.status == 404


def test_cognito_access_token_audience_is_client_id(invoke: Invoke, issuer: LocalIssuer) -> None:
    token = issuer.token(ALICE, aud=None, client_id=issuer.audience)

    assert as_function_url(invoke, "list-tasks", token, query={}).status == 200


def test_unreachable_jwks_is_503_not_401(backend: Backend, invoke: Invoke, issuer: LocalIssuer) -> None:
    backend.settings = replace(backend.settings, jwks_url="http://127.0.0.1:9/.well-known/jwks.json")

    response = as_function_url(invoke, "list-tasks", issuer.token(ALICE), query={})

    assert response.status == 503
    assert response.headers["retry-after"]


def _task_id(route: str, task: dict[str, Any]) -> str | None:
    return None if route in ("create-task", "list-tasks") else task["taskId"]


def test_an_unauthenticated_requests_log_carries_no_earlier_callers_keys(
    backend: Backend, invoke: Invoke, issuer: LocalIssuer
) -> None:
    from tasks.http import logger

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)  # the JSON lines the function writes, keys and all
    logger._logger.addHandler(handler)
    try:
        # Given a warm function that has just served alice (her sub went into its log keys)
        assert invoke("list-tasks", user=ALICE).status == 200

        # When the next request, through the function URL, fails before anyone is known (the issuer is down)
        backend.settings = replace(backend.settings, jwks_url="http://127.0.0.1:9/.well-known/jwks.json")
        response = as_function_url(invoke, "list-tasks", issuer.token(BOB), query={})
    finally:
        logger._logger.removeHandler(handler)

    # Then its error log names nobody
    assert response.status == 503
    failed = [line for line in lines.getvalue().splitlines() if "request failed" in line]
    assert failed
    assert all(ALICE not in line for line in failed)
