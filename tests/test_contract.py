"""The template, the handler and events/ agree with each other."""

import json
from typing import Any

import pytest

from core.domain.models import Task
from local.specs import function, http_api_routes
from local.template import Template
from tasks import app
from tests.support import EVENTS, Backend, Invoke, load_event

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


def test_every_events_file_is_covered() -> None:
    names = {path.stem for path in EVENTS.glob("*.json")}
    assert names == set(EXPECTED_STATUS) | {"upload-event", "task-removed"}


def _fresh_if_match(event: dict[str, Any]) -> dict[str, Any]:
    event["headers"].pop("if-match", None)
    return event
