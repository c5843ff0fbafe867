"""Bad input over real HTTP, on every entry point, with and without a token, on moto and on DynamoDB Local.

The classes of issue 8: numbers too long to parse, dates that leave the calendar in UTC, cursors and If-Match
values with characters or versions no task has, bodies that are not UTF-8 or declare another charset, an
inverted due range (moto accepts the BETWEEN it makes; DynamoDB rejects it). With a token each is a 4xx
problem; without one, a 401 before anything of the request is read.
"""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.aws import client
from local.issuer import LocalIssuer
from tests.local_support import BACKENDS, StackProcess, stack_on

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"
TASK = "01JDX6Z8Q3V5K7M9P1R3T5W7Y9"

BAD_QUERIES = [
    {"limit": "9" * 5000},
    {"dueBefore": "9999-12-31T23:59:59-05:00"},
    {"dueAfter": "0001-01-01T00:00:00+01:00"},
    {"cursor": "ééé"},
    {"cursor": "x" * 3000},
    {"sort": "dueDate", "dueAfter": "2027-01-01", "dueBefore": "2026-01-01"},
    {"sort": "dueDate", "status": "pending", "dueAfter": "2026-01-01", "dueBefore": "2026-01-01"},
    {"status": "ÿ"},
]
JSON = {"Content-Type": "application/json"}
BAD_WRITES: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/tasks", {"data": b'{"title": "caf\xe9"}', "headers": JSON}, 400),
    ("POST", "/tasks", {"data": b"\xff\xfe{}", "headers": JSON}, 400),
    ("POST", "/tasks", {"json": {"title": "x"}, "headers": {"Content-Type": "application/json; charset=latin-1"}}, 415),
    ("POST", "/tasks", {"json": {"title": "x", "dueDate": "9999-12-31T23:59:59-05:00"}}, 422),
    ("POST", "/tasks", {"json": {"title": "x", "dueDate": "0001-01-01T00:00:00+01:00"}}, 422),
    ("PATCH", "/tasks/{id}", {"json": {"title": "y"}, "headers": {"If-Match": '"{id}.' + "9" * 40 + '"'}}, 412),
    ("PATCH", "/tasks/{id}", {"json": {"title": "y"}, "headers": {"If-Match": '"{id}.é"'}}, 412),
    ("DELETE", "/tasks/{id}", {"headers": {"If-Match": '"{id}.' + "9" * 5000 + '"'}}, 412),
    ("POST", "/tasks/{id}/attachments", {"json": {"fileName": "a", "contentType": "text/plain", "size": 10**40}}, 422),
]


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with stack_on(request.param, tmp_path_factory.mktemp("edges"), table_name="edges") as process:
        yield process


@pytest.fixture(scope="module")
def token(stack: StackProcess) -> str:
    issuer: LocalIssuer = stack.issuer()
    return issuer.token(f"edge-{uuid.uuid4()}")


def entry_points(stack: StackProcess) -> dict[str, str]:
    return {"api": stack.info["api_url"], "url": stack.info["function_url"]}


@pytest.mark.parametrize("params", BAD_QUERIES, ids=lambda params: ",".join(params)[:40])
@pytest.mark.parametrize("where", ["api", "url", "export"])
def test_bad_queries_are_400_with_a_token_and_401_without(
    stack: StackProcess, token: str, where: str, params: dict[str, str]
) -> None:
    url = stack.info["export_url"] + "/tasks/export" if where == "export" else entry_points(stack)[where] + "/tasks"

    with_token = requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    without = requests.get(url, params=params, timeout=30)

    assert with_token.status_code == 400, with_token.text
    assert with_token.headers["Content-Type"] == PROBLEM
    assert without.status_code == 401


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD_WRITES, ids=lambda value: str(value)[:30])
@pytest.mark.parametrize("where", ["api", "url"])
def test_bad_writes_are_4xx_with_a_token_and_401_without(
    stack: StackProcess, token: str, where: str, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    base = entry_points(stack)[where]
    auth = {"Authorization": f"Bearer {token}"}
    task = requests.post(base + "/tasks", json={"title": "target"}, headers=auth, timeout=30).json()
    target = path.replace("{id}", task["taskId"])
    headers = {name: value.replace("{id}", task["taskId"]) for name, value in kwargs.get("headers", {}).items()}
    options = {**kwargs, "headers": headers}

    with_token = requests.request(method, base + target, **{**options, "headers": {**headers, **auth}}, timeout=30)
    without = requests.request(method, base + target, **options, timeout=30)

    assert with_token.status_code == status, with_token.text
    assert with_token.headers["Content-Type"] == PROBLEM
    assert without.status_code == 401
    assert requests.get(base + f"/tasks/{task['taskId']}", headers=auth, timeout=30).json() == task  # nothing lost


def test_a_task_deleted_by_a_request_that_died_loses_its_files_all_the_same(stack: StackProcess, token: str) -> None:
    # Given a task with an uploaded file
    base, auth = stack.info["api_url"], {"Authorization": f"Bearer {token}"}
    task = requests.post(base + "/tasks", json={"title": "orphan risk"}, headers=auth, timeout=30).json()
    grant = requests.post(
        base + f"/tasks/{task['taskId']}/attachments",
        json={"fileName": "a.txt", "contentType": "text/plain", "size": 3},
        headers=auth,
        timeout=30,
    ).json()
    upload = grant["upload"]
    requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"abc")}, timeout=30)
    stack.drain_events()

    # When the task item goes but the function dies before its cascade (here: it is deleted behind its back)
    dynamodb = client("dynamodb", stack.info["dynamodb_endpoint"])
    owner_key = f"USER#{task['userId']}"
    dynamodb.delete_item(
        TableName=stack.info["table_name"], Key={"pk": {"S": owner_key}, "sk": {"S": f"TASK#{task['taskId']}"}}
    )
    stack.drain_events()  # the table's stream reaches the clean-up function

    # Then neither the file nor its record is left, and no download is offered
    s3 = client("s3", stack.info["aws_endpoint"])
    versions = s3.list_object_versions(Bucket=stack.info["bucket_name"], Prefix=upload["fields"]["key"])
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    left = dynamodb.query(
        TableName=stack.info["table_name"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :att)",
        ExpressionAttributeValues={":pk": {"S": owner_key}, ":att": {"S": f"ATT#{task['taskId']}#"}},
    )
    assert left["Items"] == []
    path = f"/tasks/{task['taskId']}/attachments/{grant['attachmentId']}"
    assert requests.get(base + path, headers=auth, timeout=30).status_code == 404
