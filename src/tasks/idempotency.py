"""`Idempotency-Key` on the create routes (SPEC section 4), with the Powertools idempotency utility.

A retry with the same key and body within 24 hours gets the first response (status, body, headers)
without a second write; the same key with another body or route is a 422; a retry while the first
is still running is a 409 with `Retry-After`. Keys are scoped to the caller: the record's key is a
hash of the owner and the key, so two callers' keys never meet.

Records live in the tasks table, under one partition of their own (`IDEMPOTENCY`, sort key
`<function>.<handler>#<hash>`), with the table's TTL attribute `expiresAt` removing them after 24
hours. The utility (and jmespath) loads on the first request that carries the header, not at cold start.
"""

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from core.data.aws_errors import aws_errors
from core.domain import errors

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

HEADER = "idempotency-key"
EXPIRY_SECONDS = 24 * 60 * 60
RETRY_AFTER_SECONDS = 1
PARTITION = "IDEMPOTENCY"
KEY_FORMAT = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as Stripe and the IETF draft allow

Respond = Callable[[], Response[str]]
Replayed = Callable[[Response[str]], Response[str]]


class Idempotency:
    """The idempotency records of one execution environment, loaded on first use."""

    def __init__(self, dynamodb: "DynamoDBClient", table_name: str):
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._loaded: tuple[Callable[..., dict[str, Any]], IdempotencyConfig] | None = None

    def respond(
        self,
        owner: str,
        key: str,
        request: dict[str, Any],
        context: "LambdaContext",
        respond: Respond,
        replayed: Replayed | None = None,
    ) -> Response[str]:
        """`respond()` the first time `owner` sends `key`; the stored response on a retry of the same `request`,
        or what `replayed` makes of it (a response that no longer holds, such as an expired upload)."""
        if not KEY_FORMAT.fullmatch(key):
            raise errors.BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        run, config = self._loaded or self._load()
        config.register_lambda_context(context)  # an in-progress record expires with this invocation
        first: list[Response[str]] = []

        def respond_once() -> Response[str]:
            first.append(respond())
            return first[0]

        try:
            stored = run(call={"owner": owner, "key": key, "request": request}, respond=respond_once)
        except IdempotencyValidationError:
            message = "was already used for another request: send a new key for a new request"
            raise errors.InvalidInput([errors.FieldError("Idempotency-Key", message)]) from None
        except IdempotencyAlreadyInProgressError:
            raise errors.RequestInProgress(
                "a request with this Idempotency-Key is still in progress; retry shortly", RETRY_AFTER_SECONDS
            ) from None
        except IdempotencyPersistenceLayerError as error:
            with aws_errors("task store"):
                raise error.__cause__ or error from None
        response = Response(stored["status"], stored["contentType"], stored["body"], stored["headers"])
        return response if first or replayed is None else replayed(response)

    def _load(self) -> "tuple[Callable[..., dict[str, Any]], IdempotencyConfig]":
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        persistence = DynamoDBPersistenceLayer(
            table_name=self._table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=PARTITION,
            expiry_attr="expiresAt",
            boto3_client=self._dynamodb,
        )
        config = IdempotencyConfig(
            event_key_jmespath="[owner, key]",
            payload_validation_jmespath="request",
            expires_after_seconds=EXPIRY_SECONDS,
        )
        run = idempotent_function(
            _first_response, data_keyword_argument="call", persistence_store=persistence, config=config
        )
        self._loaded = (run, config)
        return self._loaded


def _first_response(call: dict[str, Any], respond: Respond) -> dict[str, Any]:
    """The response to store: everything a replay must give back."""
    response = respond()
    return {
        "status": response.status_code,
        "contentType": response.content_type,
        "body": response.body,
        "headers": response.headers,
    }
