"""Rotates the cursor key: the four steps Secrets Manager calls a rotation function for.

The key is a generic secret that only this stack's functions use, and they read it from the secret
itself (AWSCURRENT signs, AWSPREVIOUS still verifies), so there is no other system to update:
`setSecret` has nothing to do, and `testSecret` checks that the pending key is one they accept.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from core.data.aws_errors import error_code
from core.wiring import secretsmanager_client

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

KEY_LENGTH = 64
MIN_KEY_LENGTH = 32  # what the functions accept (core.config)
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"

logger = Logger()


class RotationError(Exception):
    """A rotation request this function must refuse (Secrets Manager marks the rotation failed)."""


def create_secret(client: "SecretsManagerClient", arn: str, token: str) -> None:
    """Store a new random key as the pending version, unless an earlier attempt already did."""
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        return
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    key = client.get_random_password(PasswordLength=KEY_LENGTH, ExcludePunctuation=True)["RandomPassword"]
    client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=key, VersionStages=[PENDING])


def set_secret(client: "SecretsManagerClient", arn: str, token: str) -> None:
    """Nothing outside the secret holds the key: the functions read it from here."""


def verify_secret(client: "SecretsManagerClient", arn: str, token: str) -> None:
    """The pending key is one the functions accept and differs from the current one."""
    pending = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)["SecretString"]
    current = client.get_secret_value(SecretId=arn, VersionStage=CURRENT)["SecretString"]
    if len(pending) < MIN_KEY_LENGTH:
        raise RotationError(f"the pending key is shorter than {MIN_KEY_LENGTH} characters")
    if pending == current:
        raise RotationError("the pending key is the current key")


def finish_secret(client: "SecretsManagerClient", arn: str, token: str) -> None:
    """Make the pending version current; Secrets Manager labels the old one AWSPREVIOUS."""
    stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((version for version, labels in stages.items() if CURRENT in labels), None)
    if current == token:
        return
    moves: dict[str, Any] = {"RemoveFromVersionId": current} if current else {}
    client.update_secret_version_stage(SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, **moves)


STEPS: dict[str, Callable[["SecretsManagerClient", str, str], None]] = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": verify_secret,
    "finishSecret": finish_secret,
}


def rotate(client: "SecretsManagerClient", event: dict[str, Any]) -> None:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step not in STEPS:
        raise RotationError(f"unknown rotation step {step!r}")
    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError("rotation is not enabled on the secret")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError("the secret has no version for this rotation request")
    if CURRENT in stages[token]:
        logger.info("the version is already current", extra={"step": step})
        return
    if PENDING not in stages[token]:
        raise RotationError("the version of this rotation request is not pending")
    STEPS[step](client, arn, token)
    logger.info("rotation step done", extra={"step": step})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    rotate(secretsmanager_client(), event)
