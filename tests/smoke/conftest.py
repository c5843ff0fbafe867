"""What the smoke tests run against: a deployed stack (SMOKE_ENV=dev, `make smoke ENV=dev`) or, by default,
the `make run` stack in a child process (`make test`), so the suite is exercised even without an AWS account.

Deployed, the suite makes a throwaway user in the stack's pool with a random password that never leaves
this process, signs in with the operator flow (non-prod stages) and deletes the user at the end. On prod,
which has no operator sign-in, only the checks that need no token run.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smoke.support import Target

SMOKE_ENV = os.environ.get("SMOKE_ENV", "")
UPLOAD_WAIT_SECONDS = 120  # deployed: S3 -> EventBridge -> function is asynchronous


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if SMOKE_ENV:
        yield from _deployed(SMOKE_ENV)
    else:
        yield from _local(tmp_path_factory.mktemp("smoke-stack"))


@pytest.fixture(scope="session")
def token(target: Target) -> str:
    if target.token is None:
        pytest.skip("prod has no operator sign-in: only the checks without a token run there")
    return target.token


def _local(state: Path) -> Iterator[Target]:
    from tests.local_support import start_stack_process

    stack = start_stack_process(state_dir=state)
    try:
        info = stack.info
        token = stack.issuer().token(f"smoke-{uuid.uuid4()}")
        yield Target(info["api_url"], info["function_url"], info["export_url"], token, stack.drain_events, 0)
    finally:
        assert stack.stop() == 0


def _deployed(env: str) -> Iterator[Target]:
    import boto3

    from tools.cognito_users import create_user, delete_user, operator_token, random_password
    from tools.stack_outputs import POOL_OUTPUTS, REQUIRED_OUTPUTS, require, stack_for, stack_outputs

    stack = stack_for(env)
    session = boto3.Session(region_name=stack.region)
    outputs = stack_outputs(session.client("cloudformation"), stack.name)
    api_url, function_url, export_url, stage = require(outputs, stack.name, *REQUIRED_OUTPUTS)
    if stage == "prod":
        yield Target(api_url, function_url, export_url, None, lambda: None, UPLOAD_WAIT_SECONDS)
        return
    pool_id, client_id = require(outputs, stack.name, *POOL_OUTPUTS)
    idp = session.client("cognito-idp")
    email, password = f"smoke-{uuid.uuid4()}@example.com", random_password()
    create_user(idp, pool_id, email, password)
    try:
        token = operator_token(idp, pool_id, client_id, email, password)
        yield Target(api_url, function_url, export_url, token, lambda: None, UPLOAD_WAIT_SECONDS)
    finally:
        delete_user(idp, pool_id, email)
