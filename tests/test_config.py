"""Settings are read and checked at cold start: a missing variable fails the first invocation, clearly."""

import io
import json

import pytest
from aws_lambda_powertools import Logger

from core.config import ApiSettings, CrudSettings, ExportSettings, Settings
from core.domain.errors import ConfigurationError
from core.startup import Handler, cold_start, failing_handler

BASE = {"TABLE_NAME": "t", "BUCKET_NAME": "b"}
API = {**BASE, "JWT_ISSUER": "https://issuer.example/", "JWT_AUDIENCE": "aud", "CURSOR_SECRET": "s" * 32}
CRUD = {**API, "ATTACHMENT_MAX_BYTES": "100", "ATTACHMENT_MAX_COUNT": "3", "ATTACHMENT_CONTENT_TYPES": "a/b, C/D"}
EXPORT = {**API, "EXPORT_MAX_BYTES": "2000000", "EXPORT_TIMEOUT_SECONDS": "300", "EXPORT_SAFETY_SECONDS": "25"}
KINDS: list[tuple[type[Settings], dict[str, str]]] = [
    (Settings, BASE),
    (ApiSettings, API),
    (CrudSettings, CRUD),
    (ExportSettings, EXPORT),
]


@pytest.mark.parametrize(("kind", "environ"), KINDS)
def test_complete_environment_is_read(kind: type[Settings], environ: dict[str, str]) -> None:
    settings = kind.from_environment(environ)

    assert (settings.table_name, settings.bucket_name) == ("t", "b")


def test_values_are_read_as_given() -> None:
    settings = CrudSettings.from_environment(CRUD)

    assert settings.jwt_issuer == "https://issuer.example/"  # compared exactly: a trailing slash is part of it
    assert settings.attachments.content_types == frozenset({"a/b", "c/d"})
    assert (settings.attachments.max_bytes, settings.attachments.max_count) == (100, 3)
    assert ExportSettings.from_environment(EXPORT).export_safety_seconds == 25.0


@pytest.mark.parametrize(
    ("kind", "environ", "missing"), [(kind, environ, name) for kind, environ in KINDS for name in environ]
)
def test_every_missing_variable_is_named(kind: type[Settings], environ: dict[str, str], missing: str) -> None:
    incomplete = {name: value for name, value in environ.items() if name != missing}

    with pytest.raises(ConfigurationError, match=missing):
        kind.from_environment(incomplete)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ATTACHMENT_MAX_BYTES", "lots"),
        ("ATTACHMENT_MAX_COUNT", "0"),
        ("ATTACHMENT_MAX_BYTES", "-5"),
        ("ATTACHMENT_MAX_COUNT", "nan"),
        ("ATTACHMENT_MAX_BYTES", "inf"),
        ("CURSOR_SECRET", "too short"),
        ("ATTACHMENT_CONTENT_TYPES", " , "),
    ],
)
def test_invalid_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        CrudSettings.from_environment({**CRUD, name: value})


def test_a_misconfigured_function_logs_once_and_fails_every_invocation() -> None:
    stream = io.StringIO()
    logger = Logger(service="config-test", logger_handler=None, stream=stream)

    def build() -> Handler:
        CrudSettings.from_environment({})
        raise AssertionError("an empty environment cannot be valid")

    handler = cold_start(build, failing_handler, logger)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    logged = json.loads(lines[0])
    assert logged["level"] == "ERROR"
    for name in CRUD:  # one line names every missing variable
        assert name in logged["error"]
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="TABLE_NAME"):
            handler({}, None)
