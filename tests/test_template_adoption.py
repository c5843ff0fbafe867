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
        assert variables["CURSOR_SECRET"] == ""  # declared for sam local's --env-vars only


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
    assert schedule["RotationLambdaARN"] == {"Ref": "CursorKeyRotationFunctionAliaslive"}
    assert schedule["RotationRules"]["ScheduleExpression"] == {"Fn::Sub": "rate(${CursorKeyRotationDays} days)"}
    permission = resource(transformed, "CursorKeyRotationPermission")["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {"Ref": "CursorSecret"}  # only rotations of this secret
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


# ------------------------------------------------------------ the pipeline's bootstrap template

BOOTSTRAP = ROOT / "pipeline" / "bootstrap.yaml"


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)


def test_the_bootstrap_template_passes_cfn_lint_and_checkov() -> None:
    tools = ROOT / ".tools"
    lint = run_tool(str(tools / "sam" / "bin" / "cfn-lint"), str(BOOTSTRAP))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    checkov = run_tool(
        str(tools / "checkov" / "bin" / "checkov"), "-f", str(BOOTSTRAP), "--skip-download", "--quiet", "--compact"
    )
    assert checkov.returncode == 0, checkov.stdout + checkov.stderr


def test_only_this_repository_and_environment_can_assume_the_deploy_role() -> None:
    role = load_yaml(BOOTSTRAP)["Resources"]["DeployRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = trust["Condition"]
    assert set(conditions) == {"StringEquals"}  # no StringLike: no wildcard in the subject
    assert conditions["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subject = conditions["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subject == {"Fn::Sub": "repo:${GitHubOrg}/${GitHubRepo}:environment:${GitHubEnvironment}"}


def test_the_deploy_role_hands_deployments_to_cloudformation_and_touches_nothing_else() -> None:
    statements = load_yaml(BOOTSTRAP)["Resources"]["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    plain = [s for s in statements["Statement"] if "Fn::If" not in s]
    actions = {action for s in plain for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {action.split(":")[0] for action in actions} == {"cloudformation", "s3", "iam"}
    assert not any("*" in action for action in actions)
    [pass_role] = [s for s in plain if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}


def test_the_workflow_pins_every_action_to_a_commit_and_grants_nothing_by_default() -> None:
    workflow = load_yaml(ROOT / ".github" / "workflows" / "pipeline.yml")
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        for step in job["steps"]:
            if "uses" in step:
                reference = step["uses"].split("@", 1)[1]
                assert len(reference) == 40 and all(c in "0123456789abcdef" for c in reference), step["uses"]
    assert workflow["jobs"]["deploy-prod"]["environment"] == "prod"
    assert workflow["jobs"]["deploy-prod"]["needs"] == "deploy-dev"


def test_the_export_entry_point_puts_the_task_root_then_the_layers_on_the_python_path(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "$PYTHONPATH"\n')
    fake_python.chmod(0o755)
    task_root = tmp_path / "task"
    task_root.mkdir()
    result = subprocess.run(
        ["sh", str(ROOT / "src" / "streaming" / "run.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake_python), "LAMBDA_TASK_ROOT": str(task_root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{task_root}:/opt/python"


def test_the_prod_stack_policy_protects_the_stateful_resources_of_the_template() -> None:
    policy = json.loads((ROOT / "pipeline" / "prod-stack-policy.json").read_text(encoding="utf-8"))
    [deny] = [statement for statement in policy["Statement"] if statement["Effect"] == "Deny"]
    protected = {resource.removeprefix("LogicalResourceId/") for resource in deny["Resource"]}
    resources = load_yaml(TEMPLATE)["Resources"]
    retained = {name for name, body in resources.items() if body.get("DeletionPolicy") == "Retain"}
    assert protected <= set(resources)
    assert retained | {"CursorSecret"} == protected
    assert set(deny["Action"]) == {"Update:Replace", "Update:Delete"}


CFN_LINT_DATA = next((ROOT / ".tools" / "sam" / "lib").glob("python3*/site-packages/cfnlint/data"), None)
NOT_NEEDED = {
    "cloudfront:updateDistribution": "a custom sign-in domain only; the template uses a prefix domain",
    "iam:DeleteRolePermissionsBoundary": "every role keeps the bootstrap's permissions boundary (denied)",
    "events:PutPermission": "the event bus has no Policy (a bus policy is for other accounts; none is given)",
    "events:RemovePermission": "the event bus has no Policy to remove",
}


def provider_permissions(resource_types: set[str]) -> set[str]:
    """What the CloudFormation resource providers of these types may call (their handlers' permissions,
    from the schemas cfn-lint ships), less names that are not IAM actions."""
    assert CFN_LINT_DATA is not None, "cfn-lint is missing: `make tools` installs it"
    index = json.loads((CFN_LINT_DATA / "schemas" / "providers" / "us-east-1.json").read_text(encoding="utf-8"))
    actions = json.loads((CFN_LINT_DATA / "AdditionalSpecs" / "Policies.json").read_text(encoding="utf-8"))
    needed = set()
    for resource_type in resource_types:
        schema = json.loads((CFN_LINT_DATA / "schemas" / "resources" / f"{index[resource_type]}.json").read_text())
        for handler in ("create", "read", "update", "delete"):
            for permission in schema.get("handlers", {}).get(handler, {}).get("permissions", []):
                service, _, action = permission.partition(":")
                if service in actions and action.lower() in actions[service]["Actions"]:
                    needed.add(permission.lower())
    return needed - {name.lower() for name in NOT_NEEDED}


def test_cloudformation_may_do_what_the_providers_of_the_app_stack_need(transformed: dict[str, Any]) -> None:
    policy = load_yaml(BOOTSTRAP)["Resources"]["CloudFormationRole"]["Properties"]["Policies"][0]
    granted = {
        action.lower()
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert not any("*" in action for action in granted)
    resource_types = {body["Type"] for body in transformed["Resources"].values()}
    missing = provider_permissions(resource_types) - granted
    assert not missing, f"CloudFormationRole lacks {sorted(missing)}"


def test_the_cursor_secret_is_named_after_the_stack() -> None:
    """CloudFormationRole scopes Secrets Manager to names starting with the stack name."""
    secret = load_yaml(TEMPLATE)["Resources"]["CursorSecret"]["Properties"]
    assert secret["Name"] == {"Fn::Sub": "${AWS::StackName}-cursor-key"}
