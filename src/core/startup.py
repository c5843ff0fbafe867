"""Cold start of every function: build what it serves with, or say clearly why it cannot."""

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from core.domain.errors import ConfigurationError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def cold_start[T](build: Callable[[], T], misconfigured: Callable[[ConfigurationError], T], logger: Logger) -> T:
    """`build()`, or, when the settings are missing or invalid, one clear log line and `misconfigured(error)`."""
    try:
        return build()
    except ConfigurationError as error:
        logger.error(
            "the function is misconfigured: every invocation fails until it is deployed with valid settings",
            extra={"error": str(error)},
        )
        return misconfigured(error)


def failing_handler(error: ConfigurationError) -> Handler:
    """A handler whose every invocation fails with `error` (Lambda reports it; the caller gets a 500)."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise error

    return handler
