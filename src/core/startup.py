"""Cold start of every function: build what it serves with, or say clearly why it cannot.

With SnapStart, one initialized environment is snapshotted and restored many times, so whatever
init made that restored copies must not share (AWS clients and their connections and credentials,
caches such as the JWKS keys, the `random` module's state) is made again after each restore.
Ids need nothing: `core.domain.ids` reads the kernel's generator (`os.urandom`) on every call.
"""

import random
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from snapshot_restore_py import register_after_restore

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


def reseed_randomness() -> None:
    """A restored environment's `random` state is a copy of the snapshot's: draw a new seed from the kernel."""
    random.seed()


class RestorableHandler:
    """The Lambda handler of a function: built at cold start, and built again after a SnapStart restore."""

    def __init__(self, build: Callable[[], Handler], logger: Logger):
        self._build = build
        self._logger = logger
        self._handler = cold_start(build, failing_handler, logger)
        register_after_restore(self.after_restore)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self._handler(event, context)

    def after_restore(self) -> None:
        reseed_randomness()
        self._handler = cold_start(self._build, failing_handler, self._logger)
