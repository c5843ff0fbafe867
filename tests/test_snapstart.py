"""SnapStart after-restore hooks: a restored environment gets its own clients, caches and random seed."""

import random
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from starlette.testclient import TestClient

import core.startup
import tasks.app
from core.domain.errors import ConfigurationError
from core.startup import Handler, RestorableHandler
from core.wiring import build_services
from local.issuer import LocalIssuer
from streaming.app import AFTER_RESTORE_PATH, create_app
from tests.support import ALICE, Backend, export_settings, lambda_context, make_event


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The after-restore hooks registered with the runtime's library while the test runs."""
    hooks: list[Any] = []
    monkeypatch.setattr(core.startup, "register_after_restore", hooks.append)
    return hooks


def test_a_restored_environment_builds_its_handler_again_and_reseeds_random(registered: list[Any]) -> None:
    built: list[Handler] = []

    def build() -> Handler:
        number = len(built)
        built.append(lambda event, context: {"built": number})
        return built[-1]

    handler = RestorableHandler(build, Logger())
    random.seed(7)
    snapshot_draw = random.random()
    random.seed(7)

    [hook] = registered
    hook()

    assert handler({}, None) == {"built": 1} and len(built) == 2
    assert random.random() != snapshot_draw  # not the sequence every restored copy would share


def test_a_restore_with_settings_missing_gives_a_handler_that_says_so(registered: list[Any]) -> None:
    def build() -> Handler:
        raise ConfigurationError("environment variable TABLE_NAME is required")

    handler = RestorableHandler(build, Logger())
    registered[0]()

    with pytest.raises(ConfigurationError, match="TABLE_NAME"):
        handler({}, None)


@pytest.fixture
def crud_environment(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings = backend.settings
    limits = settings.attachments
    variables = {
        "TABLE_NAME": settings.table_name,
        "BUCKET_NAME": settings.bucket_name,
        "JWT_ISSUER": settings.jwt_issuer,
        "JWT_AUDIENCE": settings.jwt_audience,
        "JWKS_URL": settings.jwks_url,
        "CURSOR_SECRET": settings.cursor_secret,
        "ATTACHMENT_MAX_BYTES": str(limits.max_bytes),
        "ATTACHMENT_MAX_COUNT": str(limits.max_count),
        "ATTACHMENT_CONTENT_TYPES": ",".join(sorted(limits.content_types)),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    yield
    for name in variables:
        monkeypatch.delenv(name)
    tasks.app.lambda_handler.after_restore()  # back to what this process's cold start built


def test_the_crud_function_serves_after_a_restore(backend: Backend, crud_environment: None) -> None:
    created = backend.invoke("create-task", body={"title": "before the snapshot"}).json()

    tasks.app.lambda_handler.after_restore()
    response = tasks.app.lambda_handler(make_event("get-task", task_id=created["taskId"]), lambda_context())

    assert response["statusCode"] == 200


def test_the_export_app_hook_gives_it_new_clients_and_it_serves(backend: Backend, issuer: LocalIssuer) -> None:
    settings, export = export_settings(backend.settings.jwks_url), backend.function("ExportFunction")
    app = create_app(settings, build_services(settings, export.dynamodb, lambda: export.s3))
    created = backend.invoke("create-task", body={"title": "before the snapshot"}).json()

    with TestClient(app) as client:
        hook = client.post(AFTER_RESTORE_PATH)
        export = client.get("/tasks/export", headers=issuer.bearer(ALICE))

    assert hook.status_code == 204
    assert export.status_code == 200 and created["taskId"] in export.text
