"""Fixtures: the AWS stand-in with the table and bucket from template.yaml, the CRUD function's backend
(with the CRUD function's credentials: the stand-in applies its role), a token issuer."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.moto_api._internal import moto_api_backend

from local.aws import LOCAL_ACCESS_KEY_ID, MotoServer
from local.iam_gate import IamGate
from local.issuer import LocalIssuer, generate_key, issuer_app
from local.roles import roles
from local.server import HttpServer
from local.template import Template
from tests.support import (
    ALICE,
    AUDIENCE,
    BUCKET,
    ISSUER,
    TABLE,
    TEST_ACCESS_KEY_ID,
    Backend,
    Invoke,
    create_table,
    crud_settings,
)

# Powertools and boto3 read these when a module is imported, which may happen at collection time.
for _name, _value in {
    "POWERTOOLS_SERVICE_NAME": "tasks",
    "POWERTOOLS_METRICS_NAMESPACE": "ServerlessTasksTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_name, _value)


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
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region for moto, and never a real endpoint or profile."""
    values = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_SERVICE_NAME": "tasks",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessTasksTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def aws_stand_in() -> Iterator[MotoServer]:
    """The local AWS stand-in, authorizing each function's requests with its role (the test's own key and
    the stack's pass): one for the session, emptied before each test by `aws`."""
    server = MotoServer("127.0.0.1", 0)
    template = Template.load(resource_names={"TasksTable": TABLE, "AttachmentsBucket": BUCKET})
    server.gates.append(IamGate(roles(template), admin_keys=[TEST_ACCESS_KEY_ID, LOCAL_ACCESS_KEY_ID]))
    yield server.start()
    server.stop()


@pytest.fixture
def aws(aws_stand_in: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty stand-in for DynamoDB, S3 and Secrets Manager, with the table created from template.yaml's
    own definition."""
    moto_api_backend.reset()
    for service in ("DYNAMODB", "S3", "SECRETS_MANAGER"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", aws_stand_in.url)
    create_table(boto3.client("dynamodb"), TABLE)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


@pytest.fixture
def backend(aws: None, jwks_url: str) -> Backend:
    return Backend(crud_settings(jwks_url))


@pytest.fixture
def invoke(backend: Backend) -> Invoke:
    return backend.invoke


@pytest.fixture
def create(invoke: Invoke) -> Callable[..., dict[str, Any]]:
    def make(user: str = ALICE, **fields: Any) -> dict[str, Any]:
        response = invoke("create-task", user=user, body={"title": "a task", **fields})
        assert response.status == 201, response
        task: dict[str, Any] = response.json()
        return task

    return make


@pytest.fixture
def moto_server() -> Iterator[MotoServer]:
    """The local stack's AWS stand-in on a free port, empty; a test may add gates and observers."""
    server = MotoServer("127.0.0.1", 0).start()
    yield server
    server.stop()
