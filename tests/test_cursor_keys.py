"""Cursor keys read from Secrets Manager at run time (moto), across rotations."""

from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import ApiSettings
from core.cursor_keys import MAX_AGE_SECONDS, RECHECK_SECONDS, SecretsManagerKeys
from core.domain.cursor import CursorCodec, FixedKeys
from core.domain.errors import InvalidCursor, ServiceUnavailable
from core.wiring import build_services, cursor_keys
from tests.support import ALICE, CURSOR_SECRET_NAME, Backend, crud_settings, function_client

POSITION = {"pk": "USER#alice", "sk": "TASK#1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Secret:
    """The cursor secret, read with the CRUD function's credentials (its role applies at the AWS stand-in),
    with a count of the GetSecretValue calls made on it."""

    def __init__(self, value: str):
        self.client = boto3.client("secretsmanager")
        self.arn = self.client.create_secret(Name=CURSOR_SECRET_NAME, SecretString=value)["ARN"]
        self.reads = 0
        self.reader = function_client("secretsmanager", "TasksFunction")
        self.reader.meta.events.register("before-call.secrets-manager.GetSecretValue", self._count)

    def _count(self, **_: Any) -> None:
        self.reads += 1

    def rotate(self, value: str) -> None:
        """What the rotation function's createSecret and finishSecret steps leave behind."""
        self.client.put_secret_value(SecretId=self.arn, SecretString=value, VersionStages=["AWSCURRENT"])

    def keys(self, clock: Clock | None = None) -> SecretsManagerKeys:
        return SecretsManagerKeys(self.arn, lambda: self.reader, clock or Clock())


@pytest.fixture
def secret(aws: None) -> Secret:
    return Secret("k1" * 20)


def test_nothing_is_read_until_a_cursor_is_signed(secret: Secret, jwks_url: str) -> None:
    settings = crud_settings(jwks_url, cursor_secret="", cursor_secret_id=secret.arn)
    keys = secret.keys()
    codec = CursorCodec(keys)
    build_services(settings, boto3.client("dynamodb"), lambda: boto3.client("s3"))
    assert secret.reads == 0
    codec.encode(POSITION, ALICE, "")
    assert secret.reads == 1


def test_a_cursor_signed_before_a_rotation_is_accepted_after_it(secret: Secret) -> None:
    before = CursorCodec(secret.keys()).encode(POSITION, ALICE, "f")
    secret.rotate("k2" * 20)
    after = CursorCodec(secret.keys())
    assert after.decode(before, ALICE, "f") == POSITION
    assert after.decode(after.encode(POSITION, ALICE, "f"), ALICE, "f") == POSITION
    assert CursorCodec(FixedKeys("k2" * 20)).decode(after.encode(POSITION, ALICE, "f"), ALICE, "f") == POSITION


def test_a_key_two_rotations_old_is_no_longer_accepted(secret: Secret) -> None:
    oldest = CursorCodec(secret.keys()).encode(POSITION, ALICE, "")
    secret.rotate("k2" * 20)
    secret.rotate("k3" * 20)
    with pytest.raises(InvalidCursor):
        CursorCodec(secret.keys()).decode(oldest, ALICE, "")


def test_a_function_that_missed_the_rotation_rereads_the_key_for_a_new_cursor(secret: Secret) -> None:
    clock = Clock()
    stale = CursorCodec(secret.keys(clock))
    stale.encode(POSITION, ALICE, "")  # caches k1
    secret.rotate("k2" * 20)
    fresh = CursorCodec(secret.keys()).encode(POSITION, ALICE, "")
    clock.now += RECHECK_SECONDS
    assert stale.decode(fresh, ALICE, "") == POSITION
    assert CursorCodec(FixedKeys("k2" * 20)).decode(stale.encode(POSITION, ALICE, ""), ALICE, "") == POSITION


def test_the_only_secret_has_no_previous_version_and_a_foreign_cursor_is_rejected(secret: Secret) -> None:
    foreign = CursorCodec("another-key-" * 4).encode(POSITION, ALICE, "")
    with pytest.raises(InvalidCursor):
        CursorCodec(secret.keys()).decode(foreign, ALICE, "")


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.floats(min_value=0, max_value=2 * MAX_AGE_SECONDS), min_size=1, max_size=30))
def test_forged_cursors_cost_at_most_one_reread_per_recheck_interval(steps: list[float]) -> None:
    from moto import mock_aws

    with mock_aws():
        secret, clock = Secret("k1" * 20), Clock()
        codec = CursorCodec(secret.keys(clock))
        forged = CursorCodec("forger-key-" * 4).encode(POSITION, ALICE, "")
        start = clock.now
        for step in steps:
            clock.now += step
            with pytest.raises(InvalidCursor):
                codec.decode(forged, ALICE, "")
        windows = (clock.now - start) // RECHECK_SECONDS + 1
        # each window: current and previous once on expiry of the cache, and once more when forced
        assert secret.reads <= 4 * windows


def test_an_unreachable_secrets_manager_is_a_503(secret: Secret) -> None:
    unreachable = boto3.client(
        "secretsmanager",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    codec = CursorCodec(SecretsManagerKeys(secret.arn, lambda: unreachable))
    with pytest.raises(ServiceUnavailable):
        codec.encode(POSITION, ALICE, "")


def test_a_listing_continues_across_a_rotation_through_the_handler(aws: None, jwks_url: str) -> None:
    secret = Secret("k1" * 20)
    backend = Backend(crud_settings(jwks_url, cursor_secret="", cursor_secret_id=secret.arn))
    backend.load_tasks(ALICE, [{} for _ in range(5)])
    first = backend.invoke("list-tasks", query={"limit": "2"}).json()
    secret.rotate("k2" * 20)
    second = backend.invoke("list-tasks", query={"limit": "2", "cursor": first["nextCursor"]})
    assert second.status == 200, second
    third = backend.invoke("list-tasks", query={"limit": "2", "cursor": second.json()["nextCursor"]})
    assert third.status == 200, third
    ids = [t["taskId"] for page in (first, second.json(), third.json()) for t in page["items"]]
    assert len(set(ids)) == 5


def base_environment() -> dict[str, str]:
    return {"TABLE_NAME": "t", "BUCKET_NAME": "b", "JWT_ISSUER": "https://issuer.example/", "JWT_AUDIENCE": "aud"}


def test_settings_take_the_secret_arn_or_a_literal_key_never_both_nor_neither() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cursor-AbCdEf"
    from_arn = ApiSettings.from_environment({**base_environment(), "CURSOR_SECRET_ARN": arn})
    assert isinstance(cursor_keys(from_arn.cursor_secret_source()), SecretsManagerKeys)
    literal = ApiSettings.from_environment({**base_environment(), "CURSOR_SECRET": "s" * 32})
    assert list(cursor_keys(literal.cursor_secret_source()).accepted()) == ["s" * 32]
    for extra in ({}, {"CURSOR_SECRET_ARN": arn, "CURSOR_SECRET": "s" * 32}):
        with pytest.raises(Exception, match="exactly one of the environment variables CURSOR_SECRET_ARN"):
            ApiSettings.from_environment({**base_environment(), **extra})


def test_settings_built_in_code_default_to_the_literal_key(jwks_url: str) -> None:
    settings = replace(crud_settings(jwks_url))
    assert settings.cursor_secret_id == ""
    assert isinstance(cursor_keys(settings.cursor_secret_source()), FixedKeys)


def test_a_cold_start_loads_no_secrets_manager_code() -> None:
    """The CRUD function configured with the secret's ARN starts without importing Powertools parameters or
    making a Secrets Manager client: only a request that signs or checks a cursor pays for them."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    environment = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{root / 'src'}:{root}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "t",
        "BUCKET_NAME": "b",
        "JWT_ISSUER": "https://issuer.example/",
        "JWT_AUDIENCE": "aud",
        "CURSOR_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cursor-AbCdEf",
        "ATTACHMENT_MAX_BYTES": "1000",
        "ATTACHMENT_MAX_COUNT": "2",
        "ATTACHMENT_CONTENT_TYPES": "text/plain",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    probe = (
        "import json, sys, tasks.app\n"
        "print(json.dumps([callable(tasks.app.lambda_handler),"
        " 'aws_lambda_powertools.utilities.parameters' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [True, False]
