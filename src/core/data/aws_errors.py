"""The one place where AWS errors become domain errors.

Throttling, a dependency's own failure or a network fault is `ServiceUnavailable` (503, retry);
a failed write condition is whatever the caller says it means (404, 412, ...); anything else is a bug
and propagates unchanged (a 500 with a correlation id).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from core.domain.errors import DomainError, ServiceUnavailable

UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "SlowDown",  # S3's throttling
        "InternalError",  # S3's 500
    }
)
CONDITION_FAILED_CODES = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})

_LOAD_CANCELLATIONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded"}
)

ConditionFailed = Callable[[ClientError], DomainError]


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors(what: str, *, condition_failed: ConditionFailed | None = None) -> Iterator[None]:
    """Translate the AWS errors of the calls inside; `what` names the dependency in the message."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in UNAVAILABLE_CODES:
            raise ServiceUnavailable(f"the {what} is busy; retry shortly") from exc
        if code == "TransactionCanceledException" and _cancelled_by_load(exc):
            raise ServiceUnavailable(f"the {what} is busy; retry shortly") from exc
        if code in CONDITION_FAILED_CODES and condition_failed is not None:
            raise condition_failed(exc) from None
        raise
    except BotoCoreError as exc:
        raise ServiceUnavailable(f"the {what} cannot be reached; retry shortly") from exc


def _cancelled_by_load(error: ClientError) -> bool:
    """A transaction cancelled by throttling or a concurrent transaction, not by a failed condition."""
    reasons = error.response.get("CancellationReasons") or []
    codes = {str(reason.get("Code", "None")) for reason in reasons}
    return bool(
        codes & {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded"}
    )
