"""Dependency failures: throttling and outages are 503 with Retry-After; bugs are a bare 500."""

import boto3
import pytest
from botocore.stub import Stubber

from core.wiring import AWS_CLIENT_CONFIG
from tests.support import REQUEST_ID, TABLE, Backend, Invoke

OPERATIONS = {
    "create-task": "put_item",
    "list-tasks": "query",
    "get-task": "get_item",
    "patch-task": "update_item",
    "replace-task": "update_item",
    "delete-task": "delete_item",
}


@pytest.mark.parametrize("route", OPERATIONS)
@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError"],
)
def test_throttling_is_503_with_retry_after(backend: Backend, invoke: Invoke, route: str, code: str) -> None:
    client = boto3.client("dynamodb")
    stubber = Stubber(client)
    stubber.add_client_error(OPERATIONS[route], service_error_code=code, http_status_code=400)
    stubber.activate()
    backend.dynamodb = client

    response = invoke(route)

    assert response.status == 503, response
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert code not in response.text
    stubber.assert_no_pending_responses()


def test_unreachable_dynamodb_is_503(backend: Backend, invoke: Invoke) -> None:
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", config=AWS_CLIENT_CONFIG)
    backend.dynamodb = client

    response = invoke("get-task")

    assert response.status == 503
    assert "127.0.0.1" not in response.text


def test_unexpected_error_is_500_with_correlation_id_and_nothing_internal(backend: Backend, invoke: Invoke) -> None:
    client = boto3.client("dynamodb")
    stubber = Stubber(client)
    stubber.add_client_error("get_item", service_error_code="ValidationException", service_message="secret detail")
    stubber.activate()
    backend.dynamodb = client

    response = invoke("get-task")

    assert response.status == 500
    body = response.json()
    assert body["correlationId"] == REQUEST_ID
    for leak in ("secret detail", "ValidationException", "Traceback", "botocore", "TaskRepository", TABLE):
        assert leak not in response.text
