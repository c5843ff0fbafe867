"""The streaming function: `GET /tasks/export` streams every matching task of the caller.

An ASGI app run by uvicorn (`run.sh`) behind the AWS Lambda Web Adapter in RESPONSE_STREAM mode.
The route does HTTP only: it verifies the caller, parses the filters, reads the first task and hands
the rest to `ExportStream`, a plain generator that reads DynamoDB page by page (Starlette runs it in
its thread pool) and writes each task as it arrives.

Everything that can fail before the first byte (token, filters, cursor, the first DynamoDB page) is
an `application/problem+json` response with the right status. A failure after the first byte ends
the body with an error record instead of the end record:

- NDJSON (default): one task per line, then `{"_end": {"count": N, "nextCursor": ...}}`, or
  `{"_error": {problem}}` after a failure.
- JSON (`?format=json`): `{"tasks": [...], "count": N, "nextCursor": ...}`, or after a failure
  `{"tasks": [...], "_error": {problem}}`: still one valid document, with no `count`. Either way a
  client that finds no `_end` / `count` knows the export is incomplete.

The export stops early, cleanly, when the Lambda deadline (less EXPORT_SAFETY_SECONDS) or the byte
budget (EXPORT_MAX_BYTES) is near; `nextCursor` then resumes after the last task written. It is null
exactly when nothing is left. Each response writes at least one task, so resuming always progresses.
`limit` is refused: the export returns everything (GET /tasks pages by `limit`).
"""

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.config import Settings, get_settings
from core.domain import errors
from core.domain.cursor import Position
from core.domain.listing import ListQuery, parse_list_query
from core.domain.models import Task
from core.domain.tasks import TaskService, task_service
from core.http import problems
from core.http.auth import caller_from_headers

logger = Logger()

Clock = Callable[[], float]
"""Seconds since the epoch (the Lambda deadline is an epoch time)."""

LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"  # set by the Web Adapter: {"request_id", "deadline" (epoch ms), ...}
REQUEST_ID_HEADER = "x-amzn-request-id"
FLUSH_BYTES = 32 * 1024  # hand the server small batches, not one write per task
TRAILER_RESERVE_BYTES = 4 * 1024  # kept free in the byte budget for the final line (a cursor is <= 2 KiB)
NO_STORE = {"Cache-Control": "no-store"}


# --- framing -------------------------------------------------------------------------------------


class Framing(Protocol):
    media_type: str
    opening: bytes

    def item(self, task: bytes, index: int) -> bytes: ...
    def end(self, count: int, next_cursor: str | None) -> bytes: ...
    def error(self, problem: Mapping[str, Any]) -> bytes: ...


class NdjsonFraming:
    media_type = "application/x-ndjson"
    opening = b""

    def item(self, task: bytes, index: int) -> bytes:
        return task + b"\n"

    def end(self, count: int, next_cursor: str | None) -> bytes:
        return _dumps({"_end": {"count": count, "nextCursor": next_cursor}}) + b"\n"

    def error(self, problem: Mapping[str, Any]) -> bytes:
        return _dumps({"_error": problem}) + b"\n"


class JsonFraming:
    media_type = "application/json"
    opening = b'{"tasks":['

    def item(self, task: bytes, index: int) -> bytes:
        return task if index == 0 else b"," + task

    def end(self, count: int, next_cursor: str | None) -> bytes:
        return b'],"count":%d,"nextCursor":%b}\n' % (count, _dumps(next_cursor))

    def error(self, problem: Mapping[str, Any]) -> bytes:
        return b'],"_error":%b}\n' % _dumps(problem)


FRAMINGS: dict[str, Framing] = {"ndjson": NdjsonFraming(), "json": JsonFraming()}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# --- budget --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """What the Web Adapter says about the Lambda invocation behind this request, if anything."""

    request_id: str
    deadline: float | None  # epoch seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "Invocation":
        context: dict[str, Any] = {}
        raw = headers.get(LAMBDA_CONTEXT_HEADER)
        if raw:
            try:
                parsed = json.loads(raw)
                context = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                logger.warning("ignoring an unreadable lambda context header")
        deadline_ms = context.get("deadline")
        request_id = context.get("request_id") or headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
        deadline = deadline_ms / 1000 if isinstance(deadline_ms, int) and deadline_ms > 0 else None
        return cls(str(request_id), deadline)


@dataclass(frozen=True)
class Budget:
    """When an export must stop: before the deadline less a safety margin, and before the byte limit."""

    clock: Clock
    deadline: float
    safety_seconds: float
    max_bytes: int

    @classmethod
    def starting_now(cls, settings: Settings, clock: Clock, lambda_deadline: float | None) -> "Budget":
        deadline = clock() + settings.export_timeout_seconds  # the function timeout, outside Lambda
        if lambda_deadline is not None:
            deadline = min(deadline, lambda_deadline)
        return cls(clock, deadline, settings.export_safety_seconds, settings.export_max_bytes)

    def exceeded(self, size: int) -> str | None:
        """Why a body of `size` bytes (plus its final line) would overrun the budget, or None."""
        if size + TRAILER_RESERVE_BYTES > self.max_bytes:
            return "byte budget"
        if self.deadline - self.clock() < self.safety_seconds:
            return "deadline"
        return None


# --- the stream ----------------------------------------------------------------------------------


class ExportStream:
    """The body of one export response: tasks from `first` on, until the end, the budget or a failure."""

    def __init__(
        self,
        first: tuple[Task, Position] | None,
        rows: Iterator[tuple[Task, Position]],
        resume: Callable[[Position], str],
        framing: Framing,
        budget: Budget,
        log_keys: dict[str, Any],
    ):
        self._first = first
        self._rows = rows
        self._resume = resume
        self._framing = framing
        self._budget = budget
        self._log_keys = log_keys

    def chunks(self) -> Iterator[bytes]:
        buffer = bytearray(self._framing.opening)
        size, count = len(buffer), 0
        row = self._first
        last: Position | None = None  # where the last task written sits: the resume point
        next_cursor: str | None = None
        try:
            while row is not None:
                task, position = row
                piece = self._framing.item(_dumps(task.to_json()), count)
                stop = self._budget.exceeded(size + len(piece)) if last is not None else None  # >= 1 task each
                if stop and last is not None:
                    next_cursor = self._resume(last)
                    logger.info("export stopped early", extra={**self._log_keys, "reason": stop, "count": count})
                    break
                buffer += piece
                size += len(piece)
                count += 1
                last = position
                if len(buffer) >= FLUSH_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
                row = next(self._rows, None)
            buffer += self._framing.end(count, next_cursor)
            logger.info("export finished", extra={**self._log_keys, "count": count, "complete": next_cursor is None})
        except errors.DomainError as error:
            problem = problems.from_error(error)
            logger.warning("export failed midway", extra={**self._log_keys, "count": count, "problem": problem.slug})
            buffer += self._framing.error(problem.body())
        except Exception:
            logger.exception("export failed midway", extra={**self._log_keys, "count": count})
            buffer += self._framing.error(problems.internal_error(self._log_keys["correlation_id"]).body())
        yield bytes(buffer)


# --- routes --------------------------------------------------------------------------------------


class Exporter:
    """`GET /tasks/export`. A sync endpoint: Starlette runs it in its thread pool, as it does the body."""

    def __init__(self, settings: Callable[[], Settings], clock: Clock, service: Callable[[], TaskService]):
        self._settings = settings
        self._clock = clock
        self._service = service

    def export(self, request: Request) -> Response:
        invocation = Invocation.from_headers(request.headers)
        request.state.correlation_id = invocation.request_id
        budget = Budget.starting_now(self._settings(), self._clock, invocation.deadline)
        owner = caller_from_headers(request.headers)
        query, format_name = parse_export_query(request.query_params)
        service = self._service()
        rows = service.scroll(owner, query)
        first = next(rows, None)  # a bad cursor or an unavailable table fails here, before any byte
        log_keys = {"correlation_id": invocation.request_id, "owner": owner, "format": format_name}
        logger.info("export started", extra=log_keys)
        framing = FRAMINGS[format_name]
        stream = ExportStream(first, rows, partial(service.resume_cursor, owner, query), framing, budget, log_keys)
        return StreamingResponse(stream.chunks(), media_type=framing.media_type, headers=NO_STORE)


def parse_export_query(params: QueryParams) -> tuple[ListQuery, str]:
    """The filters of GET /tasks (except `limit`) and `format`."""
    repeated = sorted({name for name in params if len(params.getlist(name)) > 1})
    if repeated:
        raise errors.BadRequest(f"query parameter given more than once: {', '.join(repeated)}")
    if "limit" in params:
        raise errors.BadRequest("the export takes no limit: it returns every matching task, resumable with cursor")
    query = parse_list_query(dict(params), extra=("format",))
    format_name = params.get("format", "ndjson")
    if format_name not in FRAMINGS:
        raise errors.BadRequest(f"format must be one of: {', '.join(FRAMINGS)}")
    return query, format_name


def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


# --- errors before the first byte: the same problem mapping as the CRUD function ----------------


def domain_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, errors.DomainError):  # Starlette sends only DomainError here
        raise error
    return _problem(problems.from_error(error), request)


def route_not_found(request: Request, error: Exception) -> Response:
    return _problem(problems.not_found_route(), request)


def method_not_allowed(request: Request, error: Exception) -> Response:
    allowed = (getattr(error, "headers", None) or {}).get("Allow", "GET")
    return _problem(problems.from_error(errors.MethodNotAllowed(allowed.split(", "))), request)


def unexpected_error(request: Request, error: Exception) -> Response:
    correlation_id = _correlation_id(request)
    logger.exception("unhandled error", extra={"correlation_id": correlation_id})
    return _problem(problems.internal_error(correlation_id), request)


def _problem(problem: problems.Problem, request: Request) -> Response:
    if problem.status >= 500:
        logger.error(
            "request failed",
            extra={"status": problem.status, "problem": problem.slug, "correlation_id": _correlation_id(request)},
        )
    return JSONResponse(
        problem.body(),
        status_code=problem.status,
        headers={**problem.headers, **NO_STORE},
        media_type=problems.PROBLEM_CONTENT_TYPE,
    )


def _correlation_id(request: Request) -> str:
    known = getattr(request.state, "correlation_id", None)
    return str(known) if known else Invocation.from_headers(request.headers).request_id


# --- the app -------------------------------------------------------------------------------------


def create_app(
    *,
    settings: Callable[[], Settings] = get_settings,
    clock: Clock = time.time,
    service: Callable[[], TaskService] = task_service,
) -> Starlette:
    """The streaming app. Settings and the service are read per request, so configuration stays lazy."""
    exporter = Exporter(settings, clock, service)
    export_route = Route("/tasks/export", exporter.export, methods=["GET"])
    if export_route.methods:  # Starlette adds HEAD to GET routes: a HEAD would run a whole export
        export_route.methods.discard("HEAD")
    return Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), export_route],
        exception_handlers={
            errors.DomainError: domain_error,
            404: route_not_found,
            405: method_not_allowed,
            Exception: unexpected_error,
        },
    )


app = create_app()
