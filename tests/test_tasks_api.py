"""The CRUD function through its handler, with moto and the events in events/."""

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.fields import TaskField
from core.domain.models import WRITABLE_FIELDS
from tests.support import ALICE, BOB, Backend, HttpResponse, Invoke, make_event
from tests.task_data import values_of

PROBLEM = "application/problem+json"


def assert_problem(response: HttpResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def test_create_returns_the_task_with_location_and_etag(invoke: Invoke) -> None:
    response = invoke("create-task")

    assert response.status == 201, response
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['taskId']}"
    assert response.headers["etag"] == f'"{task["taskId"]}.1"'
    assert task["userId"] == ALICE
    assert task["title"] == "Write the quarterly report"
    assert task["status"] == "pending"
    assert task["priority"] == "high"
    assert task["tags"] == ["work", "reports"]
    assert task["version"] == 1
    assert task["completedAt"] is None
    assert task["createdAt"] == task["updatedAt"]


def test_create_applies_defaults_and_trims_title(invoke: Invoke) -> None:
    task = invoke("create-task", body={"title": "  trimmed  "}).json()

    assert task["title"] == "trimmed"
    assert task["description"] == ""
    assert task["status"] == "pending"
    assert task["priority"] == "medium"
    assert task["dueDate"] is None
    assert task["tags"] == []


def test_create_completed_task_sets_completed_at(invoke: Invoke) -> None:
    task = invoke("create-task", body={"title": "done already", "status": "completed"}).json()

    assert task["completedAt"] is not None


def test_get_returns_the_task_and_304_on_matching_etag(invoke: Invoke, create: Any) -> None:
    task = create()

    response = invoke("get-task", task_id=task["taskId"])
    assert response.status == 200
    assert response.json() == task
    etag = response.headers["etag"]

    not_modified = invoke("get-task", task_id=task["taskId"], headers={"if-none-match": etag})
    assert not_modified.status == 304
    assert not_modified.text == ""
    assert not_modified.headers["etag"] == etag

    stale = invoke("get-task", task_id=task["taskId"], headers={"if-none-match": '"other.1"'})
    assert stale.status == 200


def test_unknown_task_is_404_problem(invoke: Invoke) -> None:
    missing = "01JDX6Z8Q3V5K7M9P1R3T5W7Y9"
    for name in ("get-task", "patch-task", "replace-task", "delete-task"):
        assert_problem(invoke(name, task_id=missing, drop_headers=("if-match",)), 404)


def test_patch_is_a_merge_patch(invoke: Invoke, create: Any) -> None:
    task = create(description="keep me", dueDate="2027-01-01", tags=["a"], priority="low")

    response = invoke(
        "patch-task",
        task_id=task["taskId"],
        body={"status": "completed", "dueDate": None, "tags": ["b", "c"]},
        headers={"if-match": f'"{task["taskId"]}.1"'},
    )

    assert response.status == 200, response
    patched = response.json()
    assert patched["status"] == "completed"
    assert patched["completedAt"] is not None
    assert patched["dueDate"] is None
    assert patched["tags"] == ["b", "c"]
    assert patched["description"] == "keep me"
    assert patched["priority"] == "low"
    assert patched["version"] == 2
    assert response.headers["etag"] == f'"{task["taskId"]}.2"'
    assert patched["updatedAt"] > task["updatedAt"]
    assert invoke("get-task", task_id=task["taskId"]).json() == patched


def test_patch_null_resets_optional_fields_to_defaults(invoke: Invoke, create: Any) -> None:
    task = create(description="text", priority="urgent", tags=["x"])

    patched = invoke(
        "patch-task",
        task_id=task["taskId"],
        body={"description": None, "priority": None, "tags": None},
        drop_headers=("if-match",),
    ).json()

    assert (patched["description"], patched["priority"], patched["tags"]) == ("", "medium", [])


def test_completed_at_is_kept_while_completed_and_cleared_when_leaving(invoke: Invoke, create: Any) -> None:
    task = create(status="completed")
    task_id = task["taskId"]

    again = invoke("patch-task", task_id=task_id, body={"status": "completed"}, drop_headers=("if-match",)).json()
    assert again["completedAt"] == task["completedAt"]

    reopened = invoke("patch-task", task_id=task_id, body={"status": "in_progress"}, drop_headers=("if-match",))
    assert reopened.json()["completedAt"] is None


def test_patch_cannot_clear_title(invoke: Invoke, create: Any) -> None:
    task = create()

    body = assert_problem(invoke("patch-task", task_id=task["taskId"], body={"title": None}), 422)

    assert body["errors"][0]["field"] == "title"
    assert invoke("get-task", task_id=task["taskId"]).json()["title"] == "a task"


def test_empty_patch_changes_nothing(invoke: Invoke, create: Any) -> None:
    task = create()

    response = invoke("patch-task", task_id=task["taskId"], body={}, drop_headers=("if-match",))

    assert response.status == 200
    assert response.json() == task


def test_put_replaces_every_writable_field(invoke: Invoke, create: Any) -> None:
    task = create(description="old", dueDate="2027-01-01", tags=["a"], priority="urgent", status="completed")

    response = invoke(
        "replace-task",
        task_id=task["taskId"],
        body={"title": "new title"},
        headers={"if-match": f'"{task["taskId"]}.1"'},
    )

    assert response.status == 200, response
    replaced = response.json()
    assert replaced["title"] == "new title"
    assert (replaced["description"], replaced["priority"], replaced["status"]) == ("", "medium", "pending")
    assert replaced["dueDate"] is None
    assert replaced["tags"] == []
    assert replaced["completedAt"] is None
    assert replaced["createdAt"] == task["createdAt"]
    assert replaced["version"] == 2


def test_stale_if_match_is_412_and_changes_nothing(invoke: Invoke, create: Any) -> None:
    task = create()
    task_id = task["taskId"]
    invoke("patch-task", task_id=task_id, body={"title": "v2"}, drop_headers=("if-match",))

    stale = {"if-match": f'"{task_id}.1"'}
    assert_problem(invoke("patch-task", task_id=task_id, body={"title": "lost"}, headers=stale), 412)
    assert_problem(invoke("replace-task", task_id=task_id, body={"title": "lost"}, headers=stale), 412)
    assert_problem(invoke("delete-task", task_id=task_id, headers=stale), 412)
    assert_problem(invoke("patch-task", task_id=task_id, body={"title": "x"}, headers={"if-match": "garbage"}), 412)

    current = invoke("get-task", task_id=task_id).json()
    assert current["title"] == "v2"
    assert current["version"] == 2


def test_if_match_star_and_lists(invoke: Invoke, create: Any) -> None:
    task = create()
    task_id = task["taskId"]

    star = invoke("patch-task", task_id=task_id, body={"title": "b"}, headers={"if-match": "*"})
    assert star.status == 200
    listed = invoke("patch-task", task_id=task_id, body={"title": "c"}, headers={"if-match": f'"x.1", "{task_id}.2"'})
    assert listed.status == 200
    assert listed.json()["version"] == 3


def test_delete_then_gone(invoke: Invoke, create: Any) -> None:
    task = create()

    response = invoke("delete-task", task_id=task["taskId"], headers={"if-match": f'"{task["taskId"]}.1"'})

    assert response.status == 204
    assert response.text == ""
    assert_problem(invoke("get-task", task_id=task["taskId"]), 404)
    assert_problem(invoke("delete-task", task_id=task["taskId"], drop_headers=("if-match",)), 404)


def test_second_writer_on_the_same_version_gets_412(invoke: Invoke, create: Any) -> None:
    # Real concurrency is tested end to end on DynamoDB Local: moto does not isolate concurrent writes.
    task = create()
    same_version = {"if-match": f'"{task["taskId"]}.1"'}

    first = invoke("patch-task", task_id=task["taskId"], body={"title": "first"}, headers=same_version)
    second = invoke("patch-task", task_id=task["taskId"], body={"title": "second"}, headers=same_version)

    assert (first.status, second.status) == (200, 412)
    assert invoke("get-task", task_id=task["taskId"]).json()["title"] == "first"


# --- owner isolation -------------------------------------------------------------------------


def test_another_users_task_is_404_on_every_route(invoke: Invoke, create: Any) -> None:
    task = create(user=ALICE)
    task_id = task["taskId"]

    assert_problem(invoke("get-task", user=BOB, task_id=task_id), 404)
    assert_problem(
        invoke("patch-task", user=BOB, task_id=task_id, body={"title": "x"}, drop_headers=("if-match",)), 404
    )
    assert_problem(
        invoke("replace-task", user=BOB, task_id=task_id, body={"title": "x"}, drop_headers=("if-match",)), 404
    )
    assert_problem(invoke("delete-task", user=BOB, task_id=task_id, drop_headers=("if-match",)), 404)
    assert invoke("list-tasks", user=BOB, query={}).json() == {"items": [], "nextCursor": None}

    assert invoke("get-task", user=ALICE, task_id=task_id).json() == task


def test_owner_comes_from_the_token_not_the_body_or_query(invoke: Invoke) -> None:
    assert_problem(invoke("create-task", body={"title": "x", "userId": BOB}), 422)
    assert_problem(invoke("list-tasks", query={"userId": BOB}), 400)

    task = invoke("create-task", body={"title": "x"}, headers={"x-user-id": BOB}).json()
    assert task["userId"] == ALICE


def test_no_identity_and_no_token_is_401(invoke: Invoke) -> None:
    for name in ("create-task", "list-tasks", "get-task", "patch-task", "replace-task", "delete-task"):
        response = invoke(name, user=None, drop_headers=("authorization",))
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"title": ["list"]}, "title"),
        ({"title": "ok", "description": "d" * 10_001}, "description"),
        ({"title": "ok", "status": "done"}, "status"),
        ({"title": "ok", "priority": "HIGH"}, "priority"),
        ({"title": "ok", "dueDate": "tomorrow"}, "dueDate"),
        ({"title": "ok", "dueDate": "2026-12-01T10:00:00"}, "dueDate"),
        ({"title": "ok", "dueDate": 20261201}, "dueDate"),
        ({"title": "ok", "tags": "a,b"}, "tags"),
        ({"title": "ok", "tags": ["a", "a"]}, "tags"),
        ({"title": "ok", "tags": [str(i) for i in range(21)]}, "tags"),
        ({"title": "ok", "tags": [""]}, "tags.0"),
        ({"title": "ok", "tags": ["t" * 51]}, "tags.0"),
        ({"title": "ok", "tags": [1]}, "tags.0"),
        ({"title": "ok", "taskId": "mine"}, "taskId"),
        ({"title": "ok", "version": 7}, "version"),
        ({"title": "ok", "createdAt": "2020-01-01T00:00:00Z"}, "createdAt"),
        ({"title": "ok", "colour": "red"}, "colour"),
        ({"description": "no title"}, "title"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(invoke: Invoke, body: dict[str, Any], field: str) -> None:
    problem = assert_problem(invoke("create-task", body=body), 422)

    assert field in [error["field"] for error in problem["errors"]]
    assert invoke("list-tasks", query={}).json()["items"] == []


@pytest.mark.parametrize("raw", ["{", "not json", '{"title": "x",}', "", "\x00"])
def test_malformed_json_is_400(invoke: Invoke, raw: str) -> None:
    assert_problem(invoke("create-task", raw_body=raw), 400)


@pytest.mark.parametrize("event_name", ["create-task", "patch-task", "replace-task", "create-attachment"])
@pytest.mark.parametrize("data", [b"\xff", b"\xf9\x8dT\x12", b'{"title": "caf\xe9"}', b'{"title": "\xed\xa0\x80"}'])
def test_a_body_that_is_not_utf8_is_400(backend: Backend, event_name: str, data: bytes) -> None:
    # found by the schemathesis run: API Gateway hands such a body over base64-encoded
    event = make_event(event_name)
    event.update(body=base64.b64encode(data).decode(), isBase64Encoded=True)

    problem = assert_problem(backend.call(event), 400)

    assert "UTF-8" in problem["detail"]


@pytest.mark.parametrize("raw", ["[]", "42", '"title"', "null"])
def test_json_that_is_not_an_object_is_422(invoke: Invoke, raw: str) -> None:
    assert_problem(invoke("create-task", raw_body=raw), 422)


def test_body_over_32_kib_is_413(invoke: Invoke, create: Any) -> None:
    huge = {"title": "x", "description": "d" * (33 * 1024)}
    assert_problem(invoke("create-task", body=huge), 413)
    task = create()
    assert_problem(invoke("replace-task", task_id=task["taskId"], body=huge, drop_headers=("if-match",)), 413)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_body_that_is_not_json_is_415(invoke: Invoke, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    drop = ("content-type",) if content_type is None else ()
    assert_problem(invoke("create-task", headers=headers, drop_headers=drop), 415)


def test_json_content_type_with_charset_and_merge_patch_type_are_accepted(invoke: Invoke, create: Any) -> None:
    assert invoke("create-task", headers={"content-type": "application/json; charset=utf-8"}).status == 201
    task = create()
    response = invoke(
        "patch-task",
        task_id=task["taskId"],
        body={"title": "p"},
        headers={"content-type": "application/merge-patch+json"},
        drop_headers=("if-match",),
    )
    assert response.status == 200


def test_unicode_round_trips(invoke: Invoke) -> None:
    title = "Übersicht 📝 — 日本語 \u202e"
    created = invoke("create-task", body={"title": title, "tags": ["🏷️", "ß"]}).json()

    fetched = invoke("get-task", task_id=created["taskId"]).json()

    assert fetched["title"] == title
    assert fetched["tags"] == ["🏷️", "ß"]
    assert len(invoke("create-task", body={"title": "é" * 200}).json()["title"]) == 200


def test_base64_encoded_body_is_decoded(backend: Backend) -> None:
    import base64

    event = make_event("create-task", body={"title": "from base64"})
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    response = backend.call(event)
    assert response.status == 201
    assert response.json()["title"] == "from base64"


@pytest.mark.parametrize("task_id", ["../../etc", "x" * 2000, "%00", "TASK#1"])
def test_odd_task_ids_are_404(invoke: Invoke, task_id: str) -> None:
    assert_problem(invoke("get-task", task_id=task_id), 404)


def test_wrong_method_is_405_with_allow(backend: Backend) -> None:
    event = make_event("list-tasks")
    event["requestContext"]["http"]["method"] = "PUT"
    response = backend.call(event)

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


def test_unknown_path_is_404(backend: Backend) -> None:
    event = make_event("list-tasks")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/nothing/here"
    assert_problem(backend.call(event), 404)


def test_problem_body_is_json(invoke: Invoke) -> None:
    body = json.loads(invoke("create-task", raw_body="{").text)
    assert body["type"].startswith("https://")


@pytest.mark.parametrize(("stage", "path"), [("dev", "/dev/tasks"), ("dev", "/tasks"), ("$default", "/tasks")])
def test_routes_are_found_with_the_stage_in_the_path_or_not(backend: Backend, stage: str, path: str) -> None:
    # API Gateway sends /dev/tasks with stage dev; `sam local start-api` sends /tasks with stage dev
    event = make_event("list-tasks")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["stage"] = stage

    assert backend.call(event).status == 200


CLEARABLE = [row for row in WRITABLE_FIELDS if not row.required and row.default_value() is None]


@pytest.mark.parametrize("row", CLEARABLE, ids=lambda row: row.name)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_cleared_optional_field_leaves_the_item_never_a_stored_null(
    backend: Backend, invoke: Invoke, create: Any, row: TaskField, data: st.DataObject
) -> None:
    value = data.draw(values_of(row.annotation).filter(lambda value: value is not None))
    task = create(**{row.name: value})
    for method, body in (("patch-task", {row.name: None}), ("replace-task", {"title": "t"})):
        invoke("patch-task", task_id=task["taskId"], body={row.name: value}, drop_headers=("if-match",))

        response = invoke(method, task_id=task["taskId"], body=body, drop_headers=("if-match",))

        assert response.status == 200, response
        assert response.json()[row.name] is None
        key = {"pk": {"S": f"USER#{ALICE}"}, "sk": {"S": f"TASK#{task['taskId']}"}}
        item = backend.dynamodb.get_item(TableName=backend.settings.table_name, Key=key)["Item"]
        assert not set(row.attributes(value)) & set(item), method  # derived attributes too
        assert not any("NULL" in attribute for attribute in item.values()), method
