"""Shared fixtures: a moto-backed AWS with the table from template.yaml, events from events/, tokens."""

import base64
import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core import config
from core.domain import tasks as service
from core.http import auth
from local.events import LambdaContext
from local.issuer import LocalIssuer, generate_key, issuer_app
from local.server import HttpServer
from local.template import Template, table_definition

# Powertools reads these when a handler module is imported, which may happen at collection time.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tasks")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTasksTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TABLE = "tasks-test"
BUCKET = "tasks-test-attachments"
ISSUER = "https://issuer.test"
AUDIENCE = "tasks-test-audience"
CONTENT_TYPES = Template.load().parameters["AttachmentContentTypes"]  # as the template sets it
ALICE = "alice-sub"
BOB = "bob-sub"


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    """Signs test tokens with a key made for this run."""
    return LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())


@pytest.fixture(scope="session")
def jwks_url(issuer: LocalIssuer) -> Iterator[str]:
    """The issuer's JWKS, served on a loopback port for the apps to fetch."""
    server = HttpServer(issuer_app(issuer), name="test-issuer").start()
    yield f"{server.url}/.well-known/jwks.json"
    server.stop()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, jwks_url: str) -> Iterator[None]:
    values = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_URL": jwks_url,
        "CURSOR_SECRET": "test-cursor-secret-0123456789abcdef0123456789",
        "POWERTOOLS_SERVICE_NAME": "tasks",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessTasksTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        "ATTACHMENT_CONTENT_TYPES": CONTENT_TYPES,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    clear_caches()
    yield
    clear_caches()


def clear_caches() -> None:
    config.get_settings.cache_clear()
    service.task_service.cache_clear()
    service.attachment_service.cache_clear()
    service._repository.cache_clear()
    auth.token_verifier.cache_clear()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process, with the table created from template.yaml's own definition."""
    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield


def create_table(client: Any, name: str) -> None:
    definition = dict(table_definition())
    definition["TableName"] = name
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=name)


REQUEST_ID = "test-request-0001"


def lambda_context() -> LambdaContext:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:TasksFunction"
    return LambdaContext("TasksFunction", arn, memory_limit_in_mb=512, timeout_seconds=10, aws_request_id=REQUEST_ID)


def call_handler(event: dict[str, Any]) -> "HttpResponse":
    """The CRUD function's answer to a whole event (for tests that shape the event themselves)."""
    from tasks.app import lambda_handler

    return HttpResponse(lambda_handler(event, lambda_context()))


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


Invoke = Callable[..., "HttpResponse"]


class HttpResponse:
    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        body = raw.get("body") or ""
        self.text = base64.b64decode(body).decode() if raw.get("isBase64Encoded") else body

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]}>"


def make_event(
    name: str,
    *,
    user: str | None = ALICE,
    task_id: str | None = None,
    attachment_id: str | None = None,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    drop_headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An event from events/, changed only where the test says."""
    event = copy.deepcopy(load_event(name))
    if user is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = user
    params = event.get("pathParameters") or {}
    if task_id is not None:
        params["taskId"] = task_id
    if attachment_id is not None:
        params["attachmentId"] = attachment_id
    if params:
        path = "/tasks/" + params["taskId"]
        if event["rawPath"].count("/") >= 3:
            path += "/attachments"
        if "attachmentId" in params:
            path += "/" + params["attachmentId"]
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if body is not None:
        raw_body = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
        event["isBase64Encoded"] = False
    if query is not None:
        event["queryStringParameters"] = query or None
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    for header in drop_headers:
        event["headers"].pop(header, None)
    event["headers"].update(headers or {})
    return event


@pytest.fixture
def invoke(aws: None) -> Invoke:
    def call(name: str, **changes: Any) -> HttpResponse:
        return call_handler(make_event(name, **changes))

    return call


@pytest.fixture
def create(invoke: Invoke) -> Callable[..., dict[str, Any]]:
    def make(user: str = ALICE, **fields: Any) -> dict[str, Any]:
        response = invoke("create-task", user=user, body={"title": "a task", **fields})
        assert response.status == 201, response
        task: dict[str, Any] = response.json()
        return task

    return make
