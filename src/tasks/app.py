"""The CRUD function: one Powertools resolver, routes in `task_routes` and `attachment_routes`,
every error turned into a problem response here and nowhere else."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.domain import errors
from core.http import problems
from tasks import attachment_routes, task_routes
from tasks.http import problem_response

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()
app.include_router(task_routes.router)
app.include_router(attachment_routes.router)


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route served, e.g. ("GET", "/tasks/{taskId}")."""
    return sorted((route.method, route.path.replace("<", "{").replace(">", "}")) for route in _registered())


def allowed_methods(path: str) -> list[str]:
    return sorted({route.method for route in _registered() if route.rule.match(path)})


def _registered() -> list[Any]:
    return app._static_routes + app._dynamic_routes  # Powertools keeps no public route table
