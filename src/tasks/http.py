"""Request and response helpers shared by the route modules: HTTP only, no domain decisions."""

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from core.config import get_settings
from core.domain import errors
from core.domain.models import Task
from core.http import problems
from core.http.auth import caller_from_event

if TYPE_CHECKING:
    from core.http.bodies import AttachmentRequest, TaskFields, TaskPatch

JSON_TYPES = ("application/json", "application/merge-patch+json")
logger = Logger()


def caller(event: APIGatewayProxyEventV2) -> str:
    owner = caller_from_event(event.raw_event)
    logger.append_keys(owner=owner)
    return owner


def task_fields(event: APIGatewayProxyEventV2) -> "TaskFields":
    from core.http.bodies import TaskFields, parse_body  # pydantic loads only for requests that carry a body

    return parse_body(TaskFields, _raw_body(event))


def task_patch(event: APIGatewayProxyEventV2) -> "TaskPatch":
    from core.http.bodies import TaskPatch, parse_body

    return parse_body(TaskPatch, _raw_body(event))


def attachment_request(event: APIGatewayProxyEventV2) -> "AttachmentRequest":
    from core.http.bodies import AttachmentRequest, parse_body

    return parse_body(AttachmentRequest, _raw_body(event))


def _raw_body(event: APIGatewayProxyEventV2) -> str:
    content_type = event.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise errors.UnsupportedMediaType("send the body as application/json")
    raw = event.decoded_body or ""
    limit = get_settings().max_body_bytes
    if len(raw.encode()) > limit:
        raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
    return raw


def json_response(status: int, body: Any, **headers: str) -> Response[str]:
    return Response(status, "application/json", json.dumps(body), headers)


def task_response(task: Task, status: int, **headers: str) -> Response[str]:
    return json_response(status, task.to_json(), ETag=task.etag, **headers)


def problem_response(problem: problems.Problem) -> Response[str]:
    if problem.status >= 500:
        logger.error("request failed", extra={"status": problem.status, "problem": problem.slug})
    return Response(problem.status, problems.PROBLEM_CONTENT_TYPE, json.dumps(problem.body()), problem.headers)
