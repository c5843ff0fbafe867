"""The template, the handler and events/ agree with each other."""

import json
import re
from typing import Any

import pytest

from cleanup.handler import create_handler as create_cleanup_handler
from core.domain.models import Task
from local.samples import README_ORDER, load_samples, samples
from local.specs import function, http_api_routes
from local.template import Template
from tasks import app
from tests.support import BUCKET, EVENTS, SAMPLE_RESULTS, TABLE, Backend, Invoke, lambda_context, load_event
from uploads.handler import create_handler as create_upload_handler

HANDLER = "tasks.app.lambda_handler"

# What each sample event answers against an empty table: the sample task does not exist yet.
EXPECTED_STATUS = {
    "create-task": 201,
    "list-tasks": 200,
    "get-task": 404,
    "patch-task": 404,
    "replace-task": 404,
    "delete-task": 404,
    "create-attachment": 404,
    "list-attachments": 404,
    "get-attachment": 404,
    "delete-attachment": 404,
}


def test_every_template_route_is_served_and_every_served_route_is_declared() -> None:
    template = Template.load()
    crud = [route for route in http_api_routes(template) if function(template, route.function).handler == HANDLER]

    declared = sorted((route.method, route.path) for route in crud)

    assert declared == app.routes()


def test_no_catch_all_route_in_the_template() -> None:
    assert all("{proxy+}" not in route.path and route.method != "ANY" for route in http_api_routes())


def test_every_http_event_names_a_declared_route() -> None:
    declared = {f"{route.method} {route.path}" for route in http_api_routes()}
    for path in EVENTS.glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("version") == "2.0":
            assert event["routeKey"] in declared, path.name
            assert event["requestContext"]["routeKey"] == event["routeKey"]


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_every_sample_event_invokes_the_handler(invoke: Invoke, name: str) -> None:
    response = invoke(name)

    assert response.status == EXPECTED_STATUS[name], response
    if response.status >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_sample_events_succeed_once_their_task_exists(backend: Backend) -> None:
    task_id = load_event("get-task")["pathParameters"]["taskId"]
    sub = load_event("get-task")["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    now = "2026-11-26T15:00:00.000000Z"
    backend.services().repository.create(
        Task(taskId=task_id, userId=sub, title="sample", createdAt=now, updatedAt=now, version=1)
    )

    for name, status in (("get-task", 200), ("patch-task", 200), ("replace-task", 200), ("create-attachment", 201)):
        response = backend.call(_fresh_if_match(load_event(name)))
        assert response.status == status, (name, response)
    assert backend.call(_fresh_if_match(load_event("delete-task"))).status == 204


def test_the_sample_events_answer_in_the_readme_order_once_make_samples_loaded_their_task(backend: Backend) -> None:
    loaded = load_samples(backend.dynamodb, TABLE, backend.s3, BUCKET, backend.settings.attachment_limits().max_count)
    functions = {  # each with its own credentials, so its role applies
        "UploadEventsFunction": create_upload_handler(backend.function("UploadEventsFunction").services().attachments),
        "TaskCleanupFunction": create_cleanup_handler(backend.function("TaskCleanupFunction").services().attachments),
    }

    results: dict[str, Any] = {}
    for name, function_name in README_ORDER:
        if function_name == "TasksFunction":
            response = backend.call(load_event(name))
            results[name] = response.status
            assert response.status < 400, (name, response)
        else:
            results[name] = functions[function_name](load_event(name), lambda_context(function_name))

    assert results == SAMPLE_RESULTS
    assert [name for name, _ in README_ORDER] == list(SAMPLE_RESULTS)
    assert loaded == samples()
    removed = load_event("task-removed")["Records"][0]["dynamodb"]["OldImage"]
    assert removed["taskId"]["S"] == loaded.task.taskId and removed["version"]["N"] == "3"


def test_the_readme_runs_every_sample_event_in_that_order_after_make_samples() -> None:
    readme = (EVENTS.parent / "README.md").read_text()
    section = readme[readme.index("## Try it with `sam local`") :]
    invoked = re.findall(r"^sam local invoke (\w+) .*-e events/([\w-]+)\.json", section, re.MULTILINE)

    assert [(name, function) for function, name in invoked] == list(README_ORDER)
    assert section.index("make samples") < section.index("sam local invoke")


def test_make_samples_can_load_them_again(backend: Backend) -> None:
    limit = backend.settings.attachment_limits().max_count
    load_samples(backend.dynamodb, TABLE, backend.s3, BUCKET, limit)
    backend.call(load_event("patch-task"))

    load_samples(backend.dynamodb, TABLE, backend.s3, BUCKET, limit)

    assert backend.call(load_event("patch-task")).status == 200  # version 1 again
    assert len(backend.services().attachments.live(samples().task.userId, samples().task.taskId)) == 1


def test_every_events_file_is_covered() -> None:
    names = {path.stem for path in EVENTS.glob("*.json")}
    assert names == set(EXPECTED_STATUS) | {"upload-event", "task-removed"}


def _fresh_if_match(event: dict[str, Any]) -> dict[str, Any]:
    event["headers"].pop("if-match", None)
    return event
