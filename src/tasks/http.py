"""What the route modules share: the request's caller and services, its body, and the response shapes."""

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from core.domain.models import Task
from core.http import etags, problems
from core.http.auth import Authenticator
from core.http.body import json_body_text
from core.wiring import Services
from tasks.idempotency import HEADER as IDEMPOTENCY_HEADER
from tasks.idempotency import Idempotency, Replayed, Respond

if TYPE_CHECKING:
    from core.http.bodies import AttachmentRequest, FieldChanges, WritableFields

logger = Logger()


@dataclass(frozen=True)
class Environment:
    """What one execution environment of the CRUD function serves requests with."""

    services: Services
    authenticator: Authenticator
    idempotency: Idempotency


class Request:
    """The request a route is serving: who calls, with what, and the services to answer it."""

    def __init__(self, router: APIGatewayHttpRouter):
        self.event = router.current_event
        self._context = router.lambda_context
        environment: Environment = router.context["environment"]
        self.services = environment.services
        self._idempotency = environment.idempotency
        self._caller: str = router.context["caller"]

    def caller(self) -> str:
        """The verified caller (`authenticate_first` settled it before the route ran)."""
        return self._caller

    def header(self, name: str) -> str | None:
        return self.event.headers.get(name)

    def task_fields(self) -> "WritableFields":
        from core.http.bodies import TaskFields, parse_body  # pydantic loads only for requests that carry a body

        return parse_body(TaskFields, self._body_text)

    def task_patch(self) -> "FieldChanges":
        from core.http.bodies import TaskPatch, parse_body

        return parse_body(TaskPatch, self._body_text)

    def attachment_request(self) -> "AttachmentRequest":
        from core.http.bodies import AttachmentRequest, parse_body

        return parse_body(AttachmentRequest, self._body_text)

    def once(self, owner: str, target: str, respond: Respond, replayed: Replayed | None = None) -> Response[str]:
        """`respond()`; with an Idempotency-Key, only once: a retry of the same body to the same `target` gets
        the first response back (or what `replayed` makes of it). Call it after the body is parsed (a bad body
        never touches the key)."""
        key = self.header(IDEMPOTENCY_HEADER)
        if key is None:
            return respond()
        request = {"target": target, "body": json.loads(self._body_text)}
        return self._idempotency.respond(owner, key, request, self._context, respond, replayed)

    def expected_version(self, task_id: str) -> int | None:
        header = self.header("if-match")
        return None if header is None else etags.version_from_if_match(task_id, header)

    @cached_property
    def _body_text(self) -> str:
        """The body checked and decoded once, whoever reads it (the parser, then Idempotency-Key's check)."""
        return json_body_text(self.header("content-type"), self.event.body, bool(self.event.is_base64_encoded))


def json_response(status: int, body: Any, **headers: str) -> Response[str]:
    return Response(status, "application/json", json.dumps(body), headers)


def task_response(task: Task, status: int, **headers: str) -> Response[str]:
    return json_response(status, task.to_json(), ETag=etags.etag(task), **headers)


def problem_response(problem: problems.Problem) -> Response[str]:
    if problem.status >= 500:
        logger.error("request failed", extra={"status": problem.status, "problem": problem.slug})
    return Response(problem.status, problems.PROBLEM_CONTENT_TYPE, json.dumps(problem.body()), problem.headers)
