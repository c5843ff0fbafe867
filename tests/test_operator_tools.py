"""`make user` and `make deployed-token`: the boto3 calls against moto's CloudFormation and Cognito."""

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools import cognito_users, stack_outputs
from tools.cognito_users import UserError, create_user, delete_user, operator_token, random_password, read_password
from tools.stack_outputs import StackError, require, stack_for

EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-Battery-9"


class Deployed:
    """A user pool and its app client, and a stack whose outputs name them, as the template's do."""

    def __init__(self, stack_name: str, stage: str = "dev"):
        self.idp = boto3.client("cognito-idp")
        self.pool_id = self.idp.create_user_pool(PoolName="users")["UserPool"]["Id"]
        self.client_id = self.idp.create_user_pool_client(
            UserPoolId=self.pool_id, ClientName="api", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        outputs = {"UserPoolId": self.pool_id, "UserPoolClientId": self.client_id, "StageName": stage}
        template = {
            "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(template))


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    from moto import mock_aws

    with mock_aws():
        yield Deployed(stack_for("dev").name)


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = cognito_users.main(list(argv), stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_dev_is_the_default_samconfig_section_and_unknown_envs_are_named(tmp_path: Path) -> None:
    assert stack_for("dev") == stack_for("default")
    assert stack_for("prod").name != stack_for("dev").name
    with pytest.raises(StackError, match="no deployment environment 'qa'"):
        stack_for("qa")


def test_the_outputs_are_read_from_the_stack(deployed: Deployed) -> None:
    outputs = stack_outputs.stack_outputs(boto3.client("cloudformation"), stack_for("dev").name)
    assert require(outputs, "s", "UserPoolId", "UserPoolClientId") == [deployed.pool_id, deployed.client_id]
    with pytest.raises(StackError, match="external identity provider"):
        require({"ApiUrl": "x"}, "s", "UserPoolId")


def test_a_missing_stack_is_one_clear_error(deployed: Deployed) -> None:
    with pytest.raises(StackError, match="no-such-stack"):
        stack_outputs.stack_outputs(boto3.client("cloudformation"), "no-such-stack")


def test_make_user_then_make_deployed_token_prints_only_a_token_for_that_user(deployed: Deployed) -> None:
    code, printed = run("user", "--env", "dev", "--email", EMAIL, stdin=PASSWORD + "\n")
    assert (code, printed) == (0, "")
    code, printed = run("token", "--env", "dev", "--email", EMAIL, stdin=PASSWORD + "\n")
    assert code == 0
    token = printed.strip()
    assert printed == token + "\n" and PASSWORD not in printed
    claims = jwt.decode(token, options={"verify_signature": False})
    user = deployed.idp.admin_get_user(UserPoolId=deployed.pool_id, Username=EMAIL)
    sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
    assert claims["sub"] == sub
    assert claims["client_id"] == deployed.client_id
    assert claims["token_use"] == "access"


def test_a_wrong_password_gets_no_token(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    create_user(deployed.idp, deployed.pool_id, EMAIL, PASSWORD)
    code, printed = run("token", "--env", "dev", "--email", EMAIL, stdin="Wrong-Password-123\n")
    assert (code, printed) == (1, "")
    assert "sign-in refused" in capsys.readouterr().err


def test_creating_an_existing_user_says_so(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    create_user(deployed.idp, deployed.pool_id, EMAIL, PASSWORD)
    assert run("user", "--env", "dev", "--email", EMAIL, stdin=PASSWORD + "\n")[0] == 1
    assert "already has an account" in capsys.readouterr().err


def test_prod_has_no_operator_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    from moto import mock_aws

    with mock_aws():
        prod = Deployed(stack_for("prod").name, stage="prod")
        create_user(prod.idp, prod.pool_id, EMAIL, PASSWORD)
        assert run("token", "--env", "prod", "--email", EMAIL, stdin=PASSWORD + "\n") == (1, "")
    assert "prod has no operator sign-in" in capsys.readouterr().err


def test_deleted_users_get_no_token(deployed: Deployed) -> None:
    create_user(deployed.idp, deployed.pool_id, EMAIL, PASSWORD)
    assert operator_token(deployed.idp, deployed.pool_id, deployed.client_id, EMAIL, PASSWORD)
    delete_user(deployed.idp, deployed.pool_id, EMAIL)
    with pytest.raises(UserError):
        operator_token(deployed.idp, deployed.pool_id, deployed.client_id, EMAIL, PASSWORD)


@settings(max_examples=50)
@given(length=st.integers(min_value=12, max_value=64))
def test_random_passwords_meet_the_pool_policy(length: int) -> None:
    password = random_password(length)
    assert len(password) == length
    assert any(c.isupper() for c in password) and any(c.islower() for c in password)
    assert any(c.isdigit() for c in password)


def test_passwords_come_from_stdin_and_short_ones_are_refused() -> None:
    assert read_password(io.StringIO(PASSWORD + "\nignored\n"), confirm=True) == PASSWORD
    with pytest.raises(UserError, match="at least 12"):
        read_password(io.StringIO("short\n"), confirm=False)


def test_the_local_env_needs_no_user_and_signs_a_local_token(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # the local issuer keeps its key under .local/ of the working directory
    assert run("user", "--env", "local", "--email", EMAIL) == (0, "")
    code, printed = run("token", "--env", "local", "--email", EMAIL)
    assert code == 0
    assert jwt.decode(printed.strip(), options={"verify_signature": False})["sub"] == EMAIL


def test_an_email_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("token", "--env", "dev", "--email", "") == (1, "")
    assert "EMAIL=... is required" in capsys.readouterr().err


def test_aws_failures_are_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert run("token", "--env", "dev", "--email", EMAIL, stdin=PASSWORD + "\n") == (1, "")
    assert capsys.readouterr().err.startswith("error: Unable to locate credentials")
