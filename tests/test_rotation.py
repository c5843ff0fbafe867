"""The cursor-key rotation function, step by step against the AWS stand-in's Secrets Manager, with the
rotation function's credentials (its role applies); the cursor key read with the CRUD function's."""

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from core.cursor_keys import SecretsManagerKeys
from core.domain.cursor import CursorCodec
from rotation.handler import KEY_LENGTH, STEPS, RotationError, rotate
from tests.support import CURSOR_SECRET_NAME, STEP_ORDER, RotatingSecret, function_client


@pytest.fixture
def secret(aws: None) -> RotatingSecret:
    rotator = function_client("secretsmanager", "CursorKeyRotationFunction")
    return RotatingSecret(boto3.client("secretsmanager"), name=CURSOR_SECRET_NAME, rotator=rotator)


def reader() -> Any:
    return function_client("secretsmanager", "TasksFunction")


def test_a_rotation_makes_a_new_key_current_and_keeps_the_old_one_as_previous(secret: RotatingSecret) -> None:
    before = secret.value("AWSCURRENT")
    token = secret.rotate_fully()
    after = secret.value("AWSCURRENT")
    assert after != before
    assert len(after) == KEY_LENGTH and after.isalnum()
    assert secret.value("AWSPREVIOUS") == before
    current = secret.client.get_secret_value(SecretId=secret.arn, VersionStage="AWSCURRENT")
    assert current["VersionId"] == token


def test_every_step_can_be_retried(secret: RotatingSecret) -> None:
    token = secret.start()
    secret.step(token, "createSecret")
    pending = secret.client.get_secret_value(SecretId=secret.arn, VersionId=token)["SecretString"]
    for step in STEP_ORDER:
        secret.step(token, step)
        secret.step(token, step)
    assert secret.value("AWSCURRENT") == pending


def test_cursors_signed_before_a_rotation_still_verify_after_it(secret: RotatingSecret) -> None:
    position = {"pk": "USER#a", "sk": "TASK#1"}
    old = CursorCodec(SecretsManagerKeys(secret.arn, reader)).encode(position, "a", "f")
    secret.rotate_fully()
    assert CursorCodec(SecretsManagerKeys(secret.arn, reader)).decode(old, "a", "f") == position


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Step": "dropSecret"}, "unknown rotation step"),
        ({"ClientRequestToken": "not-a-version-of-this-secret"}, "no version for this rotation"),
    ],
)
def test_requests_that_do_not_belong_to_a_rotation_are_refused(
    secret: RotatingSecret, change: dict[str, str], message: str
) -> None:
    event = {"SecretId": secret.arn, "ClientRequestToken": secret.start(), "Step": "createSecret", **change}
    with pytest.raises(RotationError, match=message):
        rotate(secret.rotator, event)


def test_a_secret_without_rotation_is_refused(secret: RotatingSecret) -> None:
    plain = secret.client.create_secret(Name="not-rotated", SecretString="plain-key-" * 4)["ARN"]
    event = {"SecretId": plain, "ClientRequestToken": secret.start(), "Step": "createSecret"}
    with pytest.raises(ClientError, match="AccessDenied"):  # the rotation role reads its own secret only
        rotate(secret.rotator, event)
    with pytest.raises(RotationError, match="not enabled"):  # and the handler refuses it itself
        rotate(secret.client, event)


def test_a_pending_key_equal_to_the_current_one_fails_the_test_step(secret: RotatingSecret) -> None:
    token = secret.start()
    secret.client.put_secret_value(
        SecretId=secret.arn,
        ClientRequestToken=token,
        SecretString=secret.value("AWSCURRENT"),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationError, match="is the current key"):
        secret.step(token, "testSecret")


def test_the_steps_are_the_four_secrets_manager_calls() -> None:
    assert set(STEPS) == set(STEP_ORDER)
