"""The cursor keys in Secrets Manager, read at run time through Powertools parameters.

Nothing is fetched at cold start: the first request that signs or checks a cursor reads the current
version, and a cursor the current key does not verify reads the previous one (kept by a rotation).
Values are cached for `MAX_AGE_SECONDS`; a cursor no cached key verifies makes one forced re-read at
most every `RECHECK_SECONDS`, so a function that has not yet seen a rotation accepts the new key's
cursors without letting forged cursors turn into a stream of Secrets Manager calls.
"""

import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from core.data.aws_errors import aws_errors, error_code

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from mypy_boto3_secretsmanager import SecretsManagerClient

MAX_AGE_SECONDS = 300
RECHECK_SECONDS = 30
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"


class SecretsManagerKeys:
    def __init__(
        self,
        secret_id: str,
        client: "Callable[[], SecretsManagerClient]",
        clock: Callable[[], float] = time.monotonic,
    ):
        self._secret_id = secret_id
        self._client = client
        self._clock = clock
        self._providers: dict[str, SecretsProvider] = {}
        self._loaded_at = -math.inf
        self._no_previous_until = -math.inf

    def accepted(self, refresh: bool = False) -> Iterator[str]:
        now = self._clock()
        if refresh and now - self._loaded_at < RECHECK_SECONDS:
            return
        if refresh or self._loaded_at == -math.inf:
            self._loaded_at = now
        yield self._read(CURRENT, force=refresh)
        if refresh or now >= self._no_previous_until:
            previous = self._read_previous(force=refresh, now=now)
            if previous is not None:
                yield previous

    def _read_previous(self, *, force: bool, now: float) -> str | None:
        try:
            return self._read(PREVIOUS, force=force)
        except _NoSuchVersion:
            self._no_previous_until = now + MAX_AGE_SECONDS
            return None

    def _read(self, stage: str, *, force: bool) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider(stage).get(
                self._secret_id, max_age=MAX_AGE_SECONDS, force_fetch=force, VersionStage=stage
            )
        except GetParameterError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError) and error_code(cause) == "ResourceNotFoundException":
                raise _NoSuchVersion from None
            if isinstance(cause, ClientError | BotoCoreError):
                with aws_errors("cursor key store"):
                    raise cause from None
            raise
        if not isinstance(value, str):
            raise TypeError(f"the cursor secret's {stage} version is not a string")
        return value

    def _provider(self, stage: str) -> "SecretsProvider":
        """One provider per version stage: Powertools caches by secret name, not by the SDK options."""
        if stage not in self._providers:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            client = next(iter(self._providers.values())).client if self._providers else self._client()
            self._providers[stage] = SecretsProvider(boto3_client=client)
        return self._providers[stage]


class _NoSuchVersion(Exception):
    """The secret has no version in that stage (no rotation has happened yet)."""
