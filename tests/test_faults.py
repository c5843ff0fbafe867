"""Dependency failures: throttling and outages are 503 with Retry-After; bugs are a bare 500."""

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from core.config import get_settings
from core.data.repository import ObjectStore, TaskRepository
from core.domain.attachments import AttachmentService
from core.domain.cursor import CursorCodec
from core.domain.tasks import AWS_CLIENT_CONFIG, TaskService
from tests.conftest import BUCKET, REQUEST_ID, TABLE, Invoke

OPERATIONS = {
    "create-task": "put_item",
    "list-tasks": "query",
    "get-task": "get_item",
    "patch-task": "update_item",
    "replace-task": "update_item",
    "delete-task": "delete_item",
}


def use_client(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    repository = TaskRepository(client, TABLE)
    objects = ObjectStore(lambda: boto3.client("s3"), BUCKET)
    service = TaskService(repository, CursorCodec("x" * 32, 60), AttachmentService(repository, objects, get_settings()))
    monkeypatch.setattr("tasks.task_routes.task_service", lambda: service)


@pytest.mark.parametrize("route", OPERATIONS)
@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError"],
)
def test_throttling_is_503_with_retry_after(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, route: str, code: str
) -> None:
    client = boto3.client("dynamodb")
    stubber = Stubber(client)
    stubber.add_client_error(OPERATIONS[route], service_error_code=code, http_status_code=400)
    stubber.activate()
    use_client(monkeypatch, client)

    response = invoke(route)

    assert response.status == 503, response
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert code not in response.text
    stubber.assert_no_pending_responses()


def test_unreachable_dynamodb_is_503(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", config=AWS_CLIENT_CONFIG)
    use_client(monkeypatch, client)

    response = invoke("get-task")

    assert response.status == 503
    assert "127.0.0.1" not in response.text


def test_unexpected_error_is_500_with_correlation_id_and_nothing_internal(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("dynamodb")
    stubber = Stubber(client)
    stubber.add_client_error("get_item", service_error_code="ValidationException", service_message="secret detail")
    stubber.activate()
    use_client(monkeypatch, client)

    response = invoke("get-task")

    assert response.status == 500
    body = response.json()
    assert body["correlationId"] == REQUEST_ID
    for leak in ("secret detail", "ValidationException", "Traceback", "botocore", "TaskRepository", TABLE):
        assert leak not in response.text
