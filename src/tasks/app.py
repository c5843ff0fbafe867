"""The CRUD function: one Powertools resolver, routes in `task_routes` and `attachment_routes`,
every error turned into a problem response here and nowhere else.

Its settings are read and checked at cold start: a missing variable is logged once, clearly, and
fails every invocation until the function is deployed with it.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.config import CrudSettings
from core.domain import errors
from core.http import problems
from core.http.auth import Authenticator
from core.startup import Handler, RestorableHandler
from core.wiring import build_services, dynamodb_client, s3_client
from tasks import attachment_routes, task_routes
from tasks.http import Environment, problem_response
from tasks.idempotency import Idempotency

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()
app.include_router(task_routes.router)
app.include_router(attachment_routes.router)


def authenticate_first(resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Who calls is settled before anything else of the request is read, as API Gateway's authorizer does:
    a request without a valid token is a 401 whatever its query string, headers or body."""
    environment: Environment = resolver.context["environment"]
    caller = environment.authenticator.caller_from_event(resolver.current_event.raw_event)
    logger.append_keys(owner=caller)
    resolver.append_context(caller=caller)
    return next_middleware(resolver)


app.use(middlewares=[authenticate_first])


@app.exception_handler(errors.DomainError)
def domain_error(error: errors.DomainError) -> Response[str]:
    return problem_response(problems.from_error(error))


@app.not_found
def route_not_found(_: NotFoundError) -> Response[str]:
    allowed = allowed_methods(app.current_event.path)
    if allowed:
        return problem_response(problems.from_error(errors.MethodNotAllowed(allowed)))
    return problem_response(problems.not_found_route())


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    metrics.add_metric(name="UnhandledError", unit=MetricUnit.Count, value=1)
    return problem_response(problems.internal_error(app.lambda_context.aws_request_id))


def environment(settings: CrudSettings, dynamodb: "DynamoDBClient", s3: "Callable[[], S3Client]") -> Environment:
    services = build_services(settings, dynamodb, s3)
    return Environment(services, Authenticator(settings), Idempotency(dynamodb, settings.table_name))


def create_handler(serving: Environment) -> Handler:
    """A Lambda handler that serves every request with `serving` (one per execution environment)."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        app.append_context(environment=serving)
        return app.resolve(stage_in_path(event), context)

    return cast(Handler, handler)  # Powertools' decorators are untyped


def stage_in_path(event: dict[str, Any]) -> dict[str, Any]:
    """The event as Powertools expects it: a named stage only when the path starts with it.

    API Gateway puts the stage in `rawPath` (`/dev/tasks`), and Powertools strips it before routing.
    `sam local start-api` names the stage but leaves it out of the path (`/tasks`), which Powertools
    would cut to `ks`; such an event is routed as the `$default` stage it really is.
    """
    context = event.get("requestContext") or {}
    stage, path = context.get("stage"), str(event.get("rawPath") or "")
    if not stage or stage == "$default" or path == f"/{stage}" or path.startswith(f"/{stage}/"):
        return event
    return {**event, "requestContext": {**context, "stage": "$default"}}


def _from_environment() -> Handler:
    settings = CrudSettings.from_environment()
    return create_handler(environment(settings, dynamodb_client(), s3_client))


lambda_handler = RestorableHandler(_from_environment, logger)


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route served, e.g. ("GET", "/tasks/{taskId}")."""
    return sorted((route.method, _template(route.path)) for route in _registered())


def _template(path: str) -> str:
    return path.replace("<", "{").replace(">", "}")


def operations() -> list[tuple[str, str, Callable[..., Any]]]:
    """(method, path template, route function) of every route served."""
    return sorted(((route.method, _template(route.path), route.func) for route in _registered()), key=lambda op: op[:2])


def allowed_methods(path: str) -> list[str]:
    return sorted({route.method for route in _registered() if route.rule.match(path)})


def _registered() -> list[Any]:
    return app._static_routes + app._dynamic_routes  # Powertools keeps no public route table
