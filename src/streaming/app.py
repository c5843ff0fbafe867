"""The streaming function: `GET /tasks/export` streams every matching task of the caller.

An ASGI app run by uvicorn (`run.sh`) behind the AWS Lambda Web Adapter in RESPONSE_STREAM mode.
The route does HTTP only: it verifies the caller, parses the filters, reads the first task and hands
the rest to `ExportStream` (`streaming.export`), a plain generator that Starlette runs in its thread pool.

Everything that can fail before the first byte (token, filters, cursor, the first DynamoDB page) is
an `application/problem+json` response with the right status. After the first byte, a failure ends
the body with an error record instead of the end record (`streaming.framing`). `limit` is refused:
the export returns everything (GET /tasks pages by `limit`).
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import ExportSettings
from core.domain import errors
from core.domain.listing import ListQuery
from core.http import problems
from core.http.auth import Authenticator
from core.http.query import parse_list_query
from core.startup import cold_start, reseed_randomness
from core.wiring import Services, build_services, dynamodb_client, s3_client
from streaming.export import Budget, ExportStream, Invocation, WallClock
from streaming.framing import FRAMINGS

logger = Logger()
EXPORT_PATH = "/tasks/export"
HEALTH_PATH = "/healthz"
NO_STORE = {"Cache-Control": "no-store"}
AFTER_RESTORE_PATH = "/_snapstart/after-restore"  # AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH in template.yaml
DROP_CONNECTION = "serverless-tasks.drop-connection"


class Exporter:
    """`GET /tasks/export`. A sync endpoint: Starlette runs it in its thread pool, as it does the body."""

    def __init__(self, settings: ExportSettings, services: Services, clock: WallClock):
        self._settings = settings
        self._tasks = services.tasks
        self._authenticator = Authenticator(settings)
        self._clock = clock

    def export(self, request: Request) -> Response:
        invocation = Invocation.from_headers(request.headers)  # the Web Adapter's, not the caller's
        request.state.correlation_id = invocation.request_id
        budget = Budget.starting_now(self._settings, self._clock, invocation.deadline)
        owner = self._authenticator.caller_from_headers(request.headers)  # before anything of the request is read
        query, format_name = parse_export_query(request.query_params)
        pages = self._tasks.export_pages(owner, query)
        first = next(pages, None)  # a bad cursor or an unavailable table fails here, before any byte
        log_keys = {"correlation_id": invocation.request_id, "owner": owner, "format": format_name}
        logger.info("export started", extra=log_keys)
        framing = FRAMINGS[format_name]
        resume = partial(self._tasks.resume_cursor, owner, query)
        stream = ExportStream(first, pages, resume, framing, budget, log_keys)
        return DeadlineStreamingResponse(stream.chunks(), budget, log_keys, media_type=framing.media_type)

    def after_restore(self, request: Request) -> Response:
        """The Web Adapter's SnapStart hook, called once before a restored environment serves: it gets its
        own AWS clients and JWKS cache (not the snapshot's) and a fresh `random` seed."""
        reseed_randomness()
        self._tasks = build_services(self._settings, dynamodb_client(), s3_client).tasks
        self._authenticator = Authenticator(self._settings)
        return Response(status_code=204)


class DeadlineStreamingResponse(StreamingResponse):
    """A streaming response every write of which must be done by the budget's cut-off, however slowly the
    client reads; past it, the response is dropped unfinished (no final line: the client knows it is
    incomplete) and the function ends its invocation before its timeout.

    Why a write can wait that long: the Web Adapter forwards uvicorn's response body to Lambda's Runtime
    API as it reads it (`lambda_http::run_with_streaming_response`, aws-lambda-web-adapter src/lib.rs),
    so when Lambda takes the stream slowly (past 6 MB it streams at most 2 MB/s, and a client that reads
    slowly holds it back; https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html)
    the adapter stops reading, the socket fills, and uvicorn's `send()` waits for it to drain. The export
    checks its deadline between writes (`ExportStream`) and ends cleanly when it can; this bounds the writes.
    """

    def __init__(self, content: Iterator[bytes], budget: Budget, log_keys: dict[str, Any], media_type: str):
        super().__init__(content, media_type=media_type, headers=NO_STORE)
        self._budget = budget
        self._log_keys = log_keys
        self._drop_connection: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._drop_connection = (scope.get("extensions") or {}).get(DROP_CONNECTION)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        async def write(message: Message) -> None:
            async with asyncio.timeout(max(self._budget.seconds_to_cut_off(), 0)):
                await send(message)

        try:
            await write({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await write({"type": "http.response.body", "body": chunk, "more_body": True})
            await write({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            logger.warning(
                "export dropped at the cut-off: the client reads too slowly to finish before the deadline",
                extra={**self._log_keys, "seconds_to_deadline": round(self._budget.deadline - self._budget.clock(), 3)},
            )
            if self._drop_connection is not None:
                self._drop_connection()
                await asyncio.sleep(0)  # let the server see the connection go before this response returns


def with_connection_drop(app: ASGIApp) -> ASGIApp:
    """`app`, given a way to drop a request's connection (ASGI has none) as `scope["extensions"][DROP_CONNECTION]`.

    uvicorn's `send` is a method of the request's cycle, which holds the connection's asyncio transport:
    `abort()` closes it at once, discarding what is buffered (a `close()` would wait for the slow client to
    read it all). Under any other server the extension is absent and a dropped response just ends.
    """

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if scope["type"] == "http" and isinstance(transport, asyncio.Transport):
            scope["extensions"] = {**(scope.get("extensions") or {}), DROP_CONNECTION: transport.abort}
        await app(scope, receive, send)

    return serve


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


def create_app(settings: ExportSettings, services: Services, clock: WallClock = time.time) -> Starlette:
    exporter = Exporter(settings, services, clock)
    export_route = Route(EXPORT_PATH, exporter.export, methods=["GET"])
    if export_route.methods:  # Starlette adds HEAD to GET routes: a HEAD would run a whole export
        export_route.methods.discard("HEAD")
    return Starlette(
        routes=[
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            export_route,
            Route(AFTER_RESTORE_PATH, exporter.after_restore, methods=["POST"]),
        ],
        exception_handlers={
            errors.DomainError: domain_error,
            404: route_not_found,
            405: method_not_allowed,
            Exception: unexpected_error,
        },
    )


def misconfigured_app(error: errors.ConfigurationError) -> Starlette:
    """Every route, the readiness check included, fails: the Web Adapter never sends it a request."""

    def refuse(request: Request) -> Response:
        raise error

    return Starlette(
        routes=[Route("/{path:path}", refuse, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])],
        exception_handlers={Exception: unexpected_error},
    )


def _from_environment() -> Starlette:
    settings = ExportSettings.from_environment()
    return create_app(settings, build_services(settings, dynamodb_client(), s3_client))


app = with_connection_drop(cold_start(_from_environment, misconfigured_app, logger))
