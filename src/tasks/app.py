"""The CRUD function: HTTP in, one task use case, HTTP out."""

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from core import errors, problems
from core.auth import caller_from_event
from core.config import get_settings
from core.listing import parse_list_query
from core.models import Task, version_from_etag
from core.service import task_service

if TYPE_CHECKING:
    from core.bodies import TaskFields, TaskPatch

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()

JSON_TYPES = ("application/json", "application/merge-patch+json")


@app.post("/tasks")
def create_task() -> Response[str]:
    task = task_service().create(_caller(), _fields())
    metrics.add_metric(name="TaskCreated", unit=MetricUnit.Count, value=1)
    return _task_response(task, 201, Location=f"/tasks/{task.taskId}")


@app.get("/tasks")
def list_tasks() -> Response[str]:
    query = parse_list_query(app.current_event.query_string_parameters)
    page = task_service().list(_caller(), query)
    body = {"items": [task.to_json() for task in page.items], "nextCursor": page.next_cursor}
    return Response(200, "application/json", json.dumps(body))


@app.get("/tasks/<taskId>")
def get_task(taskId: str) -> Response[str]:
    task = task_service().get(_caller(), taskId)
    if_none_match = app.current_event.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, task):
        return Response(304, None, "", {"ETag": task.etag})
    return _task_response(task, 200)


@app.patch("/tasks/<taskId>")
def patch_task(taskId: str) -> Response[str]:
    owner = _caller()
    patch = _patch()
    task = task_service().patch(owner, taskId, patch, _expected_version(taskId))
    return _task_response(task, 200)


@app.put("/tasks/<taskId>")
def replace_task(taskId: str) -> Response[str]:
    owner = _caller()
    fields = _fields()
    task = task_service().replace(owner, taskId, fields, _expected_version(taskId))
    return _task_response(task, 200)


@app.delete("/tasks/<taskId>")
def delete_task(taskId: str) -> Response[str]:
    task_service().delete(_caller(), taskId, _expected_version(taskId))
    return Response(204, None, "")


@app.exception_handler(errors.DomainError)
def domain_error(error: errors.DomainError) -> Response[str]:
    return _problem(problems.from_error(error))


@app.not_found
def route_not_found(_: NotFoundError) -> Response[str]:
    allowed = _allowed_methods(app.current_event.path)
    if allowed:
        return _problem(problems.from_error(errors.MethodNotAllowed(allowed)))
    return _problem(problems.not_found_route())


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    metrics.add_metric(name="UnhandledError", unit=MetricUnit.Count, value=1)
    return _problem(problems.internal_error(app.lambda_context.aws_request_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def _caller() -> str:
    owner = caller_from_event(app.current_event.raw_event)
    logger.append_keys(owner=owner)
    return owner


def _fields() -> "TaskFields":
    from core.bodies import TaskFields, parse_body  # pydantic loads only for requests that carry a body

    return parse_body(TaskFields, _raw_body())


def _patch() -> "TaskPatch":
    from core.bodies import TaskPatch, parse_body

    return parse_body(TaskPatch, _raw_body())


def _raw_body() -> str:
    event = app.current_event
    content_type = event.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise errors.UnsupportedMediaType("send the body as application/json")
    raw = event.decoded_body or ""
    limit = get_settings().max_body_bytes
    if len(raw.encode()) > limit:
        raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
    return raw


def _expected_version(task_id: str) -> int | None:
    header = app.current_event.headers.get("if-match")
    return None if header is None else version_from_etag(task_id, header)


def _etag_matches(header: str, task: Task) -> bool:
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or task.etag in candidates


def _task_response(task: Task, status: int, **headers: str) -> Response[str]:
    return Response(status, "application/json", json.dumps(task.to_json()), {"ETag": task.etag, **headers})


def _problem(problem: problems.Problem) -> Response[str]:
    if problem.status >= 500:
        logger.error("request failed", extra={"status": problem.status, "problem": problem.slug})
    return Response(problem.status, problems.PROBLEM_CONTENT_TYPE, json.dumps(problem.body()), problem.headers)


def _allowed_methods(path: str) -> list[str]:
    routes = app._static_routes + app._dynamic_routes  # Powertools keeps no public route table
    return sorted({route.method for route in routes if route.rule.match(path)})
