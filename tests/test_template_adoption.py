"""Checks of the transformed template for what adoption relies on: sign-in, the cursor key, the outputs."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.template import load_yaml

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"
API_FUNCTIONS = ("TasksFunction", "ExportFunction")


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.fail(f"{SAM_PYTHON} is missing: `make tools` installs the template tools")
    output = tmp_path_factory.mktemp("transform") / "transformed.json"
    result = subprocess.run(
        [str(SAM_PYTHON), "tools/transform_template.py", str(TEMPLATE), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return document


def resource(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["Resources"][name]
    return found


def on_stage(value: Any, prod: bool) -> Any:
    """The value a `!If [IsProd, a, b]` takes on a prod or non-prod stage."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_prod, otherwise = value["Fn::If"]
        assert condition == "IsProd", value
        return when_prod if prod else otherwise
    return value


def role_statements(doc: dict[str, Any], function: str) -> list[dict[str, Any]]:
    policies = resource(doc, f"{function}Role")["Properties"].get("Policies", [])
    return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]


def test_the_user_pool_survives_a_replacement_or_a_stack_deletion(transformed: dict[str, Any]) -> None:
    pool = resource(transformed, "UserPool")
    assert pool["DeletionPolicy"] == "Retain"
    assert pool["UpdateReplacePolicy"] == "Retain"


def test_browsers_sign_in_with_the_code_flow_and_pkce_on_a_public_client(transformed: dict[str, Any]) -> None:
    client = resource(transformed, "UserPoolClient")["Properties"]
    assert client["GenerateSecret"] is False  # a public client: PKCE is what protects the code
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthFlows"] == ["code"]  # never implicit: no token in a URL
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email"}
    assert client["CallbackURLs"] == {"Ref": "AuthCallbackUrls"}
    assert client["LogoutURLs"] == {"Ref": "AuthLogoutUrls"}
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    domain = resource(transformed, "UserPoolDomain")
    assert domain["Condition"] == "CreateUserPool"
    assert domain["Properties"]["UserPoolId"] == {"Ref": "UserPool"}
    assert "AuthDomainUrl" in transformed["Outputs"]


def test_the_operator_flow_exists_on_non_prod_stages_only(transformed: dict[str, Any]) -> None:
    flows = resource(transformed, "UserPoolClient")["Properties"]["ExplicitAuthFlows"]
    prod, other = set(on_stage(flows, prod=True)), set(on_stage(flows, prod=False))
    assert "ALLOW_ADMIN_USER_PASSWORD_AUTH" not in prod
    assert other - prod == {"ALLOW_ADMIN_USER_PASSWORD_AUTH"}
    for stage_flows in (prod, other):  # a password alone never gets a token
        assert "ALLOW_USER_PASSWORD_AUTH" not in stage_flows


def test_the_functions_get_the_secret_arn_never_its_value(transformed: dict[str, Any]) -> None:
    raw = TEMPLATE.read_text(encoding="utf-8")
    assert "resolve:secretsmanager" not in raw
    for function in API_FUNCTIONS:
        variables = resource(transformed, function)["Properties"]["Environment"]["Variables"]
        assert variables["CURSOR_SECRET_ARN"] == {"Ref": "CursorSecret"}
        assert "CURSOR_SECRET" not in variables


def test_only_the_api_functions_read_the_key_and_only_that_secret(transformed: dict[str, Any]) -> None:
    for name in transformed["Resources"]:
        if not name.endswith("FunctionRole"):
            continue
        function = name.removesuffix("Role")
        reads = [s for s in role_statements(transformed, function) if "secretsmanager:GetSecretValue" in s["Action"]]
        if function in API_FUNCTIONS:
            assert reads == [
                {
                    "Sid": "CursorKey",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": {"Ref": "CursorSecret"},
                }
            ]
        elif function != "CursorKeyRotationFunction":
            assert reads == [], function


def test_the_key_rotates_on_a_schedule_through_the_rotation_function(transformed: dict[str, Any]) -> None:
    schedule = resource(transformed, "CursorSecretRotation")["Properties"]
    assert schedule["SecretId"] == {"Ref": "CursorSecret"}
    assert schedule["RotationLambdaARN"] == {"Fn::GetAtt": ["CursorKeyRotationFunction", "Arn"]}
    assert schedule["RotationRules"]["ScheduleExpression"] == {"Fn::Sub": "rate(${CursorKeyRotationDays} days)"}
    permission = resource(transformed, "CursorKeyRotationPermission")["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    function = resource(transformed, "CursorKeyRotationFunction")["Properties"]
    assert function["Handler"] == "rotation.handler.lambda_handler"
    statements = role_statements(transformed, "CursorKeyRotationFunction")
    on_secret = [s for s in statements if s["Resource"] == {"Ref": "CursorSecret"}]
    assert {action for s in on_secret for action in s["Action"]} == {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
    elsewhere = [s for s in statements if s not in on_secret]
    assert elsewhere == [
        {"Sid": "RandomKeys", "Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}
    ]


def test_the_outputs_the_tools_read_exist() -> None:
    from tools.stack_outputs import REQUIRED_OUTPUTS

    outputs = load_yaml(TEMPLATE)["Outputs"]
    assert set(REQUIRED_OUTPUTS) <= set(outputs)


def test_the_rotation_handler_module_imports_without_aws() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import rotation.handler"],
        cwd=ROOT / "src",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stderr
