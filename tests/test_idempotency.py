"""Idempotency-Key on POST /tasks and POST /tasks/{taskId}/attachments (SPEC section 4), on moto.

The concurrent-duplicates test runs threads against DynamoDB Local (marked e2e).
"""

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import Response

from core.domain.errors import RequestInProgress
from core.domain.listing import ListQuery
from core.wiring import build_services
from tasks.app import environment
from tasks.http import task_response
from tests.local_support import start_dynamodb_local
from tests.support import ALICE, BOB, Backend, HttpResponse, create_table, crud_settings, lambda_context

KEY = {"idempotency-key": "create-7f3a9c"}
PROBLEM = "application/problem+json"
FIRST_REQUEST = {"target": "/tasks", "body": {"title": "pay rent"}}  # what POST /tasks sends for this body


def tasks_of(backend: Backend, owner: str) -> list[str]:
    page = backend.invoke("list-tasks", user=owner, query={"limit": "100"})
    return [task["taskId"] for task in page.json()["items"]]


def test_a_retry_gets_the_first_response_and_writes_nothing(backend: Backend) -> None:
    first = backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY)
    writes: list[str] = []
    backend.dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: writes.append(model.name))

    retry = backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY)

    assert first.status == retry.status == 201
    assert retry.json() == first.json()
    assert {name: retry.headers[name] for name in ("etag", "location", "content-type")} == {
        name: first.headers[name] for name in ("etag", "location", "content-type")
    }
    assert tasks_of(backend, ALICE) == [first.json()["taskId"]]
    assert "UpdateItem" not in writes and writes.count("PutItem") <= 1  # only the refused claim of the key


def test_the_same_key_with_another_body_is_a_422_and_writes_nothing(backend: Backend) -> None:
    first = backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY)

    other = backend.invoke("create-task", body={"title": "pay rent", "priority": "high"}, headers=KEY)

    assert other.status == 422 and other.headers["content-type"] == PROBLEM
    assert [error["field"] for error in other.json()["errors"]] == ["Idempotency-Key"]
    assert tasks_of(backend, ALICE) == [first.json()["taskId"]]


def test_json_that_means_the_same_is_the_same_body(backend: Backend) -> None:
    first = backend.invoke("create-task", raw_body='{"title": "pay rent", "priority": "low"}', headers=KEY)

    retry = backend.invoke("create-task", raw_body='{"priority":"low","title":"pay rent"}', headers=KEY)

    assert retry.status == 201 and retry.json() == first.json()


def test_another_callers_same_key_is_independent(backend: Backend) -> None:
    alice = backend.invoke("create-task", user=ALICE, body={"title": "pay rent"}, headers=KEY)

    bob = backend.invoke("create-task", user=BOB, body={"title": "pay rent"}, headers=KEY)
    bob_other_body = backend.invoke("create-task", user=BOB, body={"title": "water plants"}, headers=KEY)

    assert alice.status == bob.status == 201
    assert bob.json()["taskId"] != alice.json()["taskId"] and bob.json()["userId"] == BOB
    assert bob_other_body.status == 422  # bob's own use of the key binds it, alice's did not
    assert tasks_of(backend, ALICE) == [alice.json()["taskId"]]
    assert tasks_of(backend, BOB) == [bob.json()["taskId"]]


def test_a_request_without_the_key_is_never_deduplicated(backend: Backend) -> None:
    first = backend.invoke("create-task", body={"title": "pay rent"})
    second = backend.invoke("create-task", body={"title": "pay rent"})

    assert first.json()["taskId"] != second.json()["taskId"]


def test_a_rejected_body_does_not_use_up_the_key(backend: Backend) -> None:
    rejected = backend.invoke("create-task", body={"title": ""}, headers=KEY)

    accepted = backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY)

    assert rejected.status == 422 and accepted.status == 201


def test_a_failed_create_does_not_use_up_the_key(backend: Backend) -> None:
    missing_task = backend.invoke(
        "create-attachment", task_id="01JDX6Z8Q3V5K7M9P1R3T5W7Y9", body=attachment_body(), headers=KEY
    )
    task = backend.invoke("create-task", body={"title": "with a file"}).json()

    created = backend.invoke("create-attachment", task_id=task["taskId"], body=attachment_body(), headers=KEY)

    assert missing_task.status == 404 and created.status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "two words"])
def test_a_malformed_key_is_a_400(backend: Backend, key: str) -> None:
    response = backend.invoke("create-task", body={"title": "pay rent"}, headers={"idempotency-key": key})

    assert response.status == 400 and response.headers["content-type"] == PROBLEM
    assert tasks_of(backend, ALICE) == []


def attachment_body() -> dict[str, Any]:
    return {"fileName": "invoice.pdf", "contentType": "application/pdf", "size": 1234}


def test_an_attachment_retry_gets_the_same_record_and_upload_form(backend: Backend) -> None:
    task = backend.invoke("create-task", body={"title": "with a file"}).json()

    first = backend.invoke("create-attachment", task_id=task["taskId"], body=attachment_body(), headers=KEY)
    retry = backend.invoke("create-attachment", task_id=task["taskId"], body=attachment_body(), headers=KEY)
    listed = backend.invoke("list-attachments", task_id=task["taskId"]).json()["items"]

    assert first.status == retry.status == 201
    assert retry.json() == first.json() and retry.headers["location"] == first.headers["location"]
    assert [item["attachmentId"] for item in listed] == [first.json()["attachmentId"]]


def test_the_same_key_on_another_route_is_a_422(backend: Backend) -> None:
    task = backend.invoke("create-task", body={"title": "with a file"}, headers=KEY).json()

    attachment = backend.invoke("create-attachment", task_id=task["taskId"], body=attachment_body(), headers=KEY)

    assert attachment.status == 422


def test_a_retry_while_the_first_is_running_is_a_409_with_retry_after(backend: Backend) -> None:
    # The first request is still inside its create when the retry arrives; the retry is a whole handler call.
    serving = environment(backend.settings, backend.dynamodb, lambda: backend.s3)
    retries: list[HttpResponse] = []

    def first_create() -> Response[str]:
        retries.append(backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY))
        return task_response(serving.services.tasks.create(ALICE, {"title": "pay rent"}), 201)

    first = serving.idempotency.respond(ALICE, KEY["idempotency-key"], FIRST_REQUEST, lambda_context(), first_create)
    after = backend.invoke("create-task", body={"title": "pay rent"}, headers=KEY)

    [during] = retries
    assert during.status == 409 and during.headers["retry-after"] == "1"
    assert during.headers["content-type"] == PROBLEM
    assert first.status_code == after.status == 201 and after.text == first.body
    assert tasks_of(backend, ALICE) == [after.json()["taskId"]]


@pytest.fixture
def dynamodb_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    server = start_dynamodb_local()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint)
    try:
        yield lambda: boto3.client("dynamodb")
    finally:
        server.stop()


@pytest.mark.e2e
def test_concurrent_duplicates_make_exactly_one_write(dynamodb_local: Callable[[], Any], jwks_url: str) -> None:
    # Each thread is one execution environment (its own client and records), all sent the same request at once.
    settings = crud_settings(jwks_url)
    create_table(dynamodb_local(), settings.table_name)
    duplicates = 8
    start = threading.Barrier(duplicates)

    def post(_: int) -> int | str:
        serving = environment(settings, dynamodb_local(), lambda: boto3.client("s3"))

        def create() -> Response[str]:
            return task_response(serving.services.tasks.create(ALICE, {"title": "pay rent"}), 201)

        start.wait()
        try:
            response = serving.idempotency.respond(ALICE, "same-key", FIRST_REQUEST, lambda_context(), create)
        except RequestInProgress:
            return 409
        return str(json.loads(response.body)["taskId"])

    with ThreadPoolExecutor(duplicates) as pool:
        outcomes = list(pool.map(post, range(duplicates)))

    created = {outcome for outcome in outcomes if outcome != 409}
    tasks = build_services(settings, dynamodb_local(), lambda: boto3.client("s3")).tasks
    stored = [row["taskId"] for page in tasks.export_pages(ALICE, ListQuery()) for row, _ in page.rows]
    assert len(created) == 1
    assert stored == list(created)
