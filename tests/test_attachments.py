"""Attachments: presigned uploads and downloads, upload confirmation, limits, isolation, cascade."""

import base64
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from cleanup.handler import create_handler as create_cleanup_handler
from core.domain.errors import InvalidInput
from core.services.attachments import clean_file_name, content_disposition
from tests.support import ALICE, BOB, BUCKET, TABLE, Backend, HttpResponse, Invoke, lambda_context, load_event
from uploads.handler import create_handler as create_upload_handler

PDF = {"fileName": "report.pdf", "contentType": "application/pdf", "size": 11}


def attach(invoke: Invoke, task_id: str, user: str = ALICE, **body: Any) -> HttpResponse:
    return invoke("create-attachment", user=user, task_id=task_id, body={**PDF, **body})


Notify = Callable[..., dict[str, Any]]
Upload = Callable[..., dict[str, Any]]


@pytest.fixture
def notify(backend: Backend) -> Notify:
    """The upload-event function's answer to S3's "Object Created" event for `key`."""
    handler = create_upload_handler(backend.function("UploadEventsFunction").services().attachments)

    def send(key: str, size: int, version_id: str | None = None) -> dict[str, Any]:
        event = load_event("upload-event")
        event["detail"]["bucket"]["name"] = BUCKET
        event["detail"]["object"].update({"key": key, "size": size, "version-id": version_id})
        result: dict[str, Any] = handler(event, lambda_context("UploadEventsFunction"))
        return result

    return send


@pytest.fixture
def upload(notify: Notify) -> Upload:
    def post(record: dict[str, Any], data: bytes = b"hello world") -> dict[str, Any]:
        """What the browser's POST does, then the S3 event that follows it."""
        key = record["upload"]["fields"]["key"]
        put = boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=record["contentType"])
        return notify(key, len(data), put.get("VersionId"))

    return post


def object_versions(prefix: str = "attachments/") -> list[dict[str, Any]]:
    listing = boto3.client("s3").list_object_versions(Bucket=BUCKET, Prefix=prefix)
    return [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]


def attachment_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :att)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{ALICE}"}, ":att": {"S": "ATT#"}},
    )["Items"]
    return items


def test_create_returns_pending_record_and_a_presigned_post_pinning_key_type_and_size(
    invoke: Invoke, create: Any
) -> None:
    task = create()

    response = attach(invoke, task["taskId"])

    assert response.status == 201, response
    record = response.json()
    assert response.headers["location"] == f"/tasks/{task['taskId']}/attachments/{record['attachmentId']}"
    assert {k: record[k] for k in ("fileName", "contentType", "size", "status", "taskId")} == {
        **PDF,
        "status": "pending",
        "taskId": task["taskId"],
    }
    fields = record["upload"]["fields"]
    key = fields["key"]
    assert key == f"attachments/{ALICE}/{task['taskId']}/{record['attachmentId']}"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["eq", "$key", key] in conditions
    assert ["eq", "$Content-Type", "application/pdf"] in conditions
    assert ["content-length-range", 11, 11] in conditions
    assert {"bucket": BUCKET} in conditions
    policy_expiry = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")).timestamp()
    assert abs(policy_expiry - record_expiry(record)) <= 2
    assert 0 < record_expiry(record) - time.time() <= 900
    assert fields["Content-Type"] == "application/pdf"
    assert record["upload"]["url"]


def test_upload_event_marks_available_and_get_offers_a_short_download(
    invoke: Invoke, create: Any, upload: Upload
) -> None:
    task = create()
    record = attach(invoke, task["taskId"], fileName="Résumé final.pdf").json()
    ids = {"task_id": task["taskId"], "attachment_id": record["attachmentId"]}

    pending = invoke("get-attachment", **ids).json()
    assert (pending["status"], pending["download"]) == ("pending", None)

    assert upload(record)["outcome"] == "available"

    response = invoke("get-attachment", **ids)
    body = response.json()
    assert body["status"] == "available"
    query = parse_qs(urlparse(body["download"]["url"]).query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert query["response-content-disposition"][0] == content_disposition("Résumé final.pdf")
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf" in query["response-content-disposition"][0]
    assert response.headers["cache-control"] == "no-store"
    listed = invoke("list-attachments", task_id=task["taskId"]).json()["items"]
    assert [(a["attachmentId"], a["status"]) for a in listed] == [(record["attachmentId"], "available")]


def test_upload_event_with_wrong_size_does_not_make_available(invoke: Invoke, create: Any, upload: Upload) -> None:
    task = create()
    record = attach(invoke, task["taskId"]).json()

    assert upload(record, b"twelve bytes")["outcome"] == "orphan-deleted"
    assert invoke("get-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"]).json()["status"] == (
        "pending"
    )


@pytest.mark.parametrize(
    "key", ["elsewhere/file", "attachments/only/two", "attachments/a/b/c/d", "attachments//b/c", "attachments/a/b/c"]
)
def test_upload_event_ignores_objects_outside_the_attachment_layout(aws: None, key: str, notify: Notify) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x")

    assert notify(key, 1)["outcome"] == "ignored"
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=key)["KeyCount"] == 1


def test_upload_for_a_deleted_attachment_is_removed(invoke: Invoke, create: Any, upload: Upload) -> None:
    task = create()
    record = attach(invoke, task["taskId"]).json()
    invoke("delete-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"])

    assert upload(record)["outcome"] == "orphan-deleted"
    assert object_versions() == []


def test_pending_upload_past_its_window_is_never_shown(
    invoke: Invoke, create: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = create()
    record = attach(invoke, task["taskId"]).json()
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    assert invoke("list-attachments", task_id=task["taskId"]).json()["items"] == []
    response = invoke("get-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"])
    assert response.status == 404
    ttl = int(attachment_items()[0]["expiresAt"]["N"])
    assert ttl > record_expiry(record)


def test_uploads_that_never_came_free_their_slot(
    backend: Backend, invoke: Invoke, create: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.settings = replace(backend.settings, attachments=replace(backend.settings.attachments, max_count=2))
    task = create()
    assert [attach(invoke, task["taskId"]).status for _ in range(3)] == [201, 201, 409]

    later = time.time() + 3600  # both upload windows have passed
    monkeypatch.setattr(time, "time", lambda: later)

    assert [attach(invoke, task["taskId"]).status for _ in range(3)] == [201, 201, 409]


def test_deleting_an_attachment_frees_its_slot(backend: Backend, invoke: Invoke, create: Any) -> None:
    backend.settings = replace(backend.settings, attachments=replace(backend.settings.attachments, max_count=1))
    task = create()
    first = attach(invoke, task["taskId"]).json()
    assert attach(invoke, task["taskId"]).status == 409

    assert invoke("delete-attachment", task_id=task["taskId"], attachment_id=first["attachmentId"]).status == 204

    assert attach(invoke, task["taskId"]).status == 201


def record_expiry(record: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(record["upload"]["expiresAt"].replace("Z", "+00:00")).timestamp())


def test_delete_attachment_removes_object_versions_and_record(invoke: Invoke, create: Any, upload: Upload) -> None:
    task = create()
    record = attach(invoke, task["taskId"]).json()
    upload(record)
    key = record["upload"]["fields"]["key"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"hello again")  # a second version

    response = invoke("delete-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"])

    assert response.status == 204
    assert object_versions(key) == []
    assert attachment_items() == []
    again = invoke("delete-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"])
    assert again.status == 404


def test_deleting_a_task_deletes_its_attachments(invoke: Invoke, create: Any, upload: Upload) -> None:
    task = create()
    for name in ("a.pdf", "b.pdf"):
        upload(attach(invoke, task["taskId"], fileName=name).json())
    attach(invoke, task["taskId"], fileName="pending.pdf")
    other = create()
    upload(attach(invoke, other["taskId"]).json())

    assert invoke("delete-task", task_id=task["taskId"], drop_headers=("if-match",)).status == 204

    assert [v["Key"].split("/")[2] for v in object_versions()] == [other["taskId"]]
    assert [item["taskId"]["S"] for item in attachment_items()] == [other["taskId"]]


def test_a_cascade_that_fails_is_finished_by_the_clean_up_function(
    backend: Backend, invoke: Invoke, create: Any, monkeypatch: pytest.MonkeyPatch, upload: Upload
) -> None:
    from core.data.objects import ObjectStore
    from core.domain.errors import ServiceUnavailable

    task = create()
    upload(attach(invoke, task["taskId"]).json())
    real = ObjectStore.delete_everything

    def failing(self: ObjectStore, keys: list[str]) -> None:
        raise ServiceUnavailable("S3 is down")

    # When S3 fails during the delete, the task is still gone and the caller gets its 204
    monkeypatch.setattr(ObjectStore, "delete_everything", failing)
    assert invoke("delete-task", task_id=task["taskId"], drop_headers=("if-match",)).status == 204
    assert invoke("get-task", task_id=task["taskId"]).status == 404
    assert len(attachment_items()) == 1

    # Then the stream's REMOVE record reaches the clean-up function, which removes what is left
    monkeypatch.setattr(ObjectStore, "delete_everything", real)
    result = clean_up(backend, ALICE, task["taskId"])
    assert result == {"batchItemFailures": []}
    assert object_versions() == []
    assert attachment_items() == []


def test_the_clean_up_function_reports_only_the_records_it_could_not_finish(
    backend: Backend, invoke: Invoke, create: Any, monkeypatch: pytest.MonkeyPatch, upload: Upload
) -> None:
    from core.data.objects import ObjectStore
    from core.domain.errors import ServiceUnavailable

    task = create()
    upload(attach(invoke, task["taskId"]).json())
    monkeypatch.setattr(
        ObjectStore, "delete_everything", lambda self, keys: (_ for _ in ()).throw(ServiceUnavailable("down"))
    )
    event = removal_event(ALICE, task["taskId"])
    event["Records"].append(removal_event("someone-else", "01JDX6Z8Q3V5K7M9P1R3T5W7Y9")["Records"][0])
    event["Records"][1]["dynamodb"]["SequenceNumber"] = "222"

    result = create_cleanup_handler(backend.function("TaskCleanupFunction").services().attachments)(
        event, lambda_context("TaskCleanupFunction")
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "111"}]}


def removal_event(owner: str, task_id: str) -> dict[str, Any]:
    event = load_event("task-removed")
    keys = {"pk": {"S": f"USER#{owner}"}, "sk": {"S": f"TASK#{task_id}"}}
    event["Records"][0]["dynamodb"]["Keys"] = keys
    event["Records"][0]["dynamodb"]["OldImage"].update(keys)
    return event


def clean_up(backend: Backend, owner: str, task_id: str) -> Any:
    handler = create_cleanup_handler(backend.function("TaskCleanupFunction").services().attachments)
    return handler(removal_event(owner, task_id), lambda_context("TaskCleanupFunction"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": 10 * 1024 * 1024 + 1}, "size"),
        ({"size": 0}, "size"),
        ({"size": "11"}, "size"),
        ({"contentType": "application/x-msdownload"}, "contentType"),
        ({"contentType": "text/html"}, "contentType"),
        ({"fileName": ""}, "fileName"),
        ({"fileName": "../../"}, "fileName"),
        ({"fileName": "\r\n"}, "fileName"),
        ({"fileName": "x" * 256}, "fileName"),
        ({"status": "available"}, "status"),
    ],
)
def test_invalid_attachment_requests_are_422(invoke: Invoke, create: Any, body: dict[str, Any], field: str) -> None:
    task = create()

    response = attach(invoke, task["taskId"], **body)

    assert response.status == 422, response
    assert field in [error["field"] for error in response.json()["errors"]]
    assert attachment_items() == []


def test_attachment_limit_per_task_is_409(backend: Backend, invoke: Invoke, create: Any) -> None:
    limits = replace(backend.settings.attachments, max_count=2)
    backend.settings = replace(backend.settings, attachments=limits)
    task = create()
    assert attach(invoke, task["taskId"]).status == 201
    assert attach(invoke, task["taskId"]).status == 201

    response = attach(invoke, task["taskId"])

    assert response.status == 409
    assert len(attachment_items()) == 2


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("evil\r\nSet-Cookie: x.pdf", "evilSet-Cookie: x.pdf"),
        ('quote".pdf', "quote'.pdf"),
        ("\u202etxt.exe", "txt.exe"),
        ("  spaced  .pdf ", "spaced  .pdf"),
    ],
)
def test_file_names_are_sanitised(given: str, cleaned: str) -> None:
    assert clean_file_name(given) == cleaned


def test_file_name_with_nothing_left_is_invalid() -> None:
    with pytest.raises(InvalidInput):
        clean_file_name("/\x00\x01/")


def test_another_users_task_and_attachments_are_404(invoke: Invoke, create: Any, upload: Upload) -> None:
    task = create(user=ALICE)
    record = attach(invoke, task["taskId"]).json()
    upload(record)
    ids = {"task_id": task["taskId"], "attachment_id": record["attachmentId"]}

    assert attach(invoke, task["taskId"], user=BOB).status == 404
    assert invoke("list-attachments", user=BOB, task_id=task["taskId"]).status == 404
    assert invoke("get-attachment", user=BOB, **ids).status == 404
    assert invoke("delete-attachment", user=BOB, **ids).status == 404
    assert invoke("get-attachment", user=ALICE, **ids).json()["status"] == "available"


def test_attachment_routes_need_a_token(invoke: Invoke) -> None:
    for name in ("create-attachment", "list-attachments", "get-attachment", "delete-attachment"):
        assert invoke(name, user=None, drop_headers=("authorization",)).status == 401


def test_unknown_task_is_404_for_attachments(invoke: Invoke) -> None:
    assert attach(invoke, "01JDX6Z8Q3V5K7M9P1R3T5W7Y9").status == 404
    assert invoke("list-attachments").status == 404


@pytest.mark.parametrize("code", ["SlowDown", "InternalError", "ServiceUnavailable"])
def test_s3_throttling_is_503_and_the_attachment_stays(
    backend: Backend, invoke: Invoke, create: Any, code: str
) -> None:
    from botocore.stub import Stubber

    task = create()
    record = attach(invoke, task["taskId"]).json()
    client = boto3.client("s3")
    stubber = Stubber(client)
    stubber.add_client_error("list_object_versions", service_error_code=code, http_status_code=503)
    stubber.activate()
    backend.s3 = client

    response = invoke("delete-attachment", task_id=task["taskId"], attachment_id=record["attachmentId"])

    assert response.status == 503, response
    assert response.headers["retry-after"]
    assert len(attachment_items()) == 1
