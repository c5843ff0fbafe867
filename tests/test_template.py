"""Checks of template.yaml: least privilege, the SAM tools, and the shape the code relies on.

The SAM, cfn-lint and checkov tools live in their own virtual environments (`make tools`);
a missing tool fails these tests rather than skipping them.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.data.queries import INDEX_KEYS
from local.template import load_yaml
from tasks.app import routes as served_routes

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
TOOLS = ROOT / ".tools"
SAM_BIN = Path(os.environ.get("SAM_BIN", TOOLS / "sam" / "bin" / "sam"))
CFN_LINT_BIN = Path(os.environ.get("CFN_LINT_BIN", TOOLS / "sam" / "bin" / "cfn-lint"))
CHECKOV_BIN = Path(os.environ.get("CHECKOV_BIN", TOOLS / "checkov" / "bin" / "checkov"))
# samtranslator is installed with the SAM CLI, so the transform runs with that interpreter.
SAM_PYTHON = SAM_BIN.parent / "python"
TOOL_TIMEOUT = 900

FUNCTIONS = tuple(
    name for name, body in load_yaml()["Resources"].items() if body["Type"] == "AWS::Serverless::Function"
)
CRUD_ROUTES = set(served_routes())  # what the CRUD handler serves; test_contract checks the two agree
SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    # The role SAM makes for CodeDeploy (DeploymentPreference): AWS's service-role policy for shifting
    # Lambda alias traffic and reading the rollback alarms.
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
}


# ------------------------------------------------------------------ loading


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


def _tool(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make tools` installs the template tools")
    return str(path)


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False, **kwargs
    )


def transform_template(output: Path) -> Path:
    """template.yaml through the SAM transform (offline), written to `output`."""
    result = _run([_tool(SAM_PYTHON), "tools/transform_template.py", str(TEMPLATE), str(output)])
    assert result.returncode == 0, f"SAM transform failed:\n{result.stdout}\n{result.stderr}"
    return output


@pytest.fixture(scope="module")
def transformed_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return transform_template(tmp_path_factory.mktemp("transform") / "transformed.json")


@pytest.fixture(scope="module")
def transformed(transformed_path: Path) -> dict[str, Any]:
    return json.loads(transformed_path.read_text(encoding="utf-8"))


def _resources(doc: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in doc["Resources"].items() if res["Type"] == resource_type}


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every statement of every policy document anywhere under node."""
    if isinstance(node, dict):
        statement = node.get("Statement")
        if isinstance(statement, dict):
            yield statement
        elif isinstance(statement, list):
            yield from (item for item in statement if isinstance(item, dict))
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _statements(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function_actions(doc: dict[str, Any], function: str) -> set[str]:
    role = doc["Resources"][f"{function}Role"]["Properties"]
    return {
        action
        for statement in _statements(role.get("Policies", []))
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement["Action"])
    }


def _env(template: dict[str, Any], function: str) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


# ------------------------------------------------------------ least privilege


@pytest.mark.parametrize("which", ["raw", "transformed"])
def test_no_allow_statement_uses_a_wildcard_action(which: str, template: dict[str, Any], request: Any) -> None:
    # Deny statements (TLS-only bucket and queue policies) may use wildcards: they only take away.
    doc = template if which == "raw" else request.getfixturevalue("transformed")
    allows = [statement for statement in _statements(doc["Resources"]) if statement.get("Effect") == "Allow"]
    assert allows, "no policy statements found"
    for statement in allows:
        assert "NotAction" not in statement, statement
        for action in _as_list(statement["Action"]):
            assert isinstance(action, str), statement
            assert "*" not in action, f"wildcard action {action!r} in {statement}"
            assert action.lower() != "dynamodb:scan", statement


def test_no_sam_crud_policy_templates_or_broad_managed_policies(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    for name, function in _resources(template, "AWS::Serverless::Function").items():
        for policy in _as_list(function["Properties"].get("Policies", [])):
            names = (
                [policy] if isinstance(policy, str) else [key for key in policy if key not in ("Version", "Statement")]
            )
            for policy_name in names:
                assert not policy_name.endswith("CrudPolicy"), f"{name} uses {policy_name}"
                assert "FullAccess" not in policy_name, f"{name} uses {policy_name}"
    for name, role in _resources(transformed, "AWS::IAM::Role").items():
        managed = set(role["Properties"].get("ManagedPolicyArns", []))
        assert managed <= SAM_MANAGED_POLICIES, f"{name} has managed policies {managed - SAM_MANAGED_POLICIES}"


def test_each_function_has_exactly_the_access_it_needs(transformed: dict[str, Any]) -> None:
    # Each action is held both ways: a missing one fails the end-to-end suites (the AWS stand-in authorizes
    # every request with the caller's role) or tests/test_roles.py (event sources); an unused one fails
    # tests/test_least_privilege.py.
    expected = {
        "TasksFunction": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:BatchWriteItem",
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:ListBucketVersions",
            "secretsmanager:GetSecretValue",
        },
        "ExportFunction": {"dynamodb:Query", "secretsmanager:GetSecretValue"},
        "UploadEventsFunction": {
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "sqs:SendMessage",
        },
        "TaskCleanupFunction": {
            "dynamodb:Query",
            "dynamodb:BatchWriteItem",
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:ListBucketVersions",
            "sqs:SendMessage",
        },
        "EventPublisherFunction": {
            "events:PutEvents",
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            "sqs:SendMessage",
        },
        "CursorKeyRotationFunction": {
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:GetRandomPassword",
        },
    }
    assert set(expected) == set(FUNCTIONS), "every function's role is listed here"
    for function, actions in expected.items():
        assert _function_actions(transformed, function) == actions, function


def test_s3_object_access_is_limited_to_the_attachment_prefix(transformed: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        role = transformed["Resources"][f"{function}Role"]["Properties"]
        for statement in _statements(role.get("Policies", [])):
            actions = _as_list(statement["Action"])
            if not any(action.startswith("s3:") for action in actions):
                continue
            if any(action.startswith("s3:List") for action in actions):
                assert statement["Resource"] == {"Fn::GetAtt": ["AttachmentsBucket", "Arn"]}
                assert statement["Condition"] == {"StringLike": {"s3:prefix": "attachments/*"}}
            else:
                assert statement["Resource"] == {"Fn::Sub": "${AttachmentsBucket.Arn}/attachments/*"}


def test_no_scan_in_the_code() -> None:
    pattern = re.compile(r"\.scan\s*\(|[\"'][Ss]can[\"']")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not offenders, "Scan found:\n" + "\n".join(offenders)


# ----------------------------------------------------------------- the tools


def test_sam_validate_lint() -> None:
    result = _run([_tool(SAM_BIN), "validate", "--lint", "--template", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_passes_on_the_transformed_template(transformed_path: Path) -> None:
    result = _run([_tool(CFN_LINT_BIN), str(transformed_path)])
    assert result.returncode == 0, f"cfn-lint (errors and warnings both fail):\n{result.stdout}{result.stderr}"


def _checkov(path: Path) -> tuple[int, list[dict[str, Any]]]:
    command = [_tool(CHECKOV_BIN), "--skip-download", "--framework", "cloudformation", "--file", str(path)]
    result = _run([*command, "--output", "json"])
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    reports = report if isinstance(report, list) else [report]
    results = [item["results"] for item in reports if item.get("check_type") == "cloudformation"]
    assert results, f"checkov scanned nothing: {result.stdout[:2000]}"
    return result.returncode, results


def _logical_id(check: dict[str, Any]) -> str:
    return str(check["resource"]).split(".", 1)[1]


def test_checkov_passes_on_the_transformed_template(transformed_path: Path) -> None:
    returncode, results = _checkov(transformed_path)
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for r in results for c in r["failed_checks"]]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert returncode == 0
    for check in (check for r in results for check in r["skipped_checks"]):
        assert check["check_result"].get("suppress_comment", "").strip(), f"skip without a reason: {check}"


def test_every_checkov_skip_is_needed(template: dict[str, Any], transformed: dict[str, Any], tmp_path: Path) -> None:
    # Without the skips, each skipped check must fail on its resource: a skip of a check that
    # passes (or no longer exists) only hides future regressions.
    unskipped = json.loads(json.dumps(transformed))
    for resource in unskipped["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    path = tmp_path / "unskipped.json"
    path.write_text(json.dumps(unskipped), encoding="utf-8")
    _, results = _checkov(path)
    failing = {(check["check_id"], _logical_id(check)) for r in results for check in r["failed_checks"]}

    declared = 0
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            declared += 1
            assert skip.get("comment", "").strip(), f"{logical_id} skips {skip['id']} without a reason"
            assert any(check_id == skip["id"] and name.startswith(logical_id) for check_id, name in failing), (
                f"{logical_id} skips {skip['id']}, which passes without the skip: remove the skip"
            )
    assert declared


def test_sam_build_packages_code_and_dependencies(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    # sam build resolves the runtime python3.13 from PATH: put this interpreter's base install first.
    path = os.pathsep.join([str(Path(sys.base_prefix) / "bin"), os.environ.get("PATH", "")])
    result = _run(
        [_tool(SAM_BIN), "build", "--no-cached", "--build-dir", str(build_dir), "--template", str(TEMPLATE)],
        env={"PATH": path},
    )
    assert result.returncode == 0, result.stdout + result.stderr

    run_sh = build_dir / "ExportFunction" / "streaming" / "run.sh"
    assert run_sh.is_file()
    assert os.access(run_sh, os.X_OK), "run.sh lost its execute bit in the build"
    for function, package in [
        ("TasksFunction", "aws_lambda_powertools"),
        ("TasksFunction", "core"),
        ("ExportFunction", "uvicorn"),
        ("ExportFunction", "starlette"),
        ("UploadEventsFunction", "core"),
    ]:
        assert (build_dir / function / package).is_dir(), f"{package} missing from the {function} package"
    # Dependencies with native code must be the Linux arm64 builds.
    native = list((build_dir / "TasksFunction" / "pydantic_core").glob("*.so"))
    assert native, "pydantic_core has no compiled module"
    assert all("aarch64" in module.name for module in native), native


# --------------------------------------------------------- shape of resources


def test_streaming_function_runs_behind_the_web_adapter(template: dict[str, Any]) -> None:
    function = template["Resources"]["ExportFunction"]["Properties"]
    env = _env(template, "ExportFunction")
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz"
    assert str(env["AWS_LWA_PORT"]).isdigit() and str(env["AWS_LWA_PORT"]) != "8080"
    assert int(env["EXPORT_TIMEOUT_SECONDS"]) == function["Timeout"]
    assert 0 < int(env["EXPORT_SAFETY_SECONDS"]) < function["Timeout"]
    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"

    # The adapter's layer for the functions' architecture (test_local_sam_env resolves it both ways).
    (layer,) = function["Layers"]
    arn, variables = layer["Fn::Sub"]
    assert re.fullmatch(
        r"arn:\$\{AWS::Partition\}:lambda:\$\{AWS::Region\}:753240598075:layer:\$\{LayerName\}:\d+", arn
    )
    assert variables == {"LayerName": {"Fn::If": ["IsArm64", "LambdaAdapterLayerArm64", "LambdaAdapterLayerX86"]}}
    assert template["Conditions"]["IsArm64"] == {"Fn::Equals": [{"Ref": "Architecture"}, "arm64"]}

    assert function["Handler"] == "streaming/run.sh"
    run_sh = ROOT / "src" / function["Handler"]
    assert run_sh.is_file()
    assert os.access(run_sh, os.X_OK), "run.sh must be executable"
    content = run_sh.read_bytes()
    assert b"\r" not in content, "run.sh must have LF line endings"
    assert content.startswith(b"#!/bin/sh\n") or content.startswith(b"#!/bin/bash\n")
    assert re.search(rb"^exec .*uvicorn streaming\.app:app", content, re.MULTILINE)
    assert b"AWS_LWA_PORT" in content


def test_every_function_is_python313_arm64_with_its_own_log_group(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    architecture = template["Parameters"]["Architecture"]
    assert architecture["Default"] == "arm64" and set(architecture["AllowedValues"]) == {"arm64", "x86_64"}
    functions = _resources(transformed, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    log_groups = _resources(transformed, "AWS::Logs::LogGroup")
    used = []
    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13", name
        assert properties["Architectures"] == [{"Ref": "Architecture"}], name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
        group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in log_groups, name
        assert log_groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        used.append(group)
    assert len(set(used)) == len(used), "functions share a log group"

    stage = next(iter(_resources(transformed, "AWS::ApiGatewayV2::Stage").values()))["Properties"]
    access_group = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert log_groups[access_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert json.loads(stage["AccessLogSettings"]["Format"])["requestId"] == "$context.requestId"
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_the_table_matches_the_contract(template: dict[str, Any]) -> None:
    table = template["Resources"]["TasksTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]} == {
        (name, "S") for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
    }
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    used = {name: keys[2:] for name, keys in INDEX_KEYS.items() if name is not None}  # what the queries use
    assert set(indexes) == set(used)
    for name, (hash_key, range_key) in used.items():
        assert indexes[name]["KeySchema"] == [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ]
        assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_every_api_route_is_explicit_and_behind_the_jwt_authorizer(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    events = template["Resources"]["TasksFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "HttpApi"}
    assert routes == CRUD_ROUTES

    auth = template["Resources"]["HttpApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert {"issuer", "audience"} <= set(authorizer["JwtConfiguration"])

    body = next(iter(_resources(transformed, "AWS::ApiGatewayV2::Api").values()))["Properties"]["Body"]
    operations = {
        (method.upper(), path): operation
        for path, methods in body["paths"].items()
        for method, operation in methods.items()
        if method != "parameters"
    }
    assert set(operations) == CRUD_ROUTES, "the API has routes beyond the explicit ones"
    for route, operation in operations.items():
        assert operation["security"] == [{auth["DefaultAuthorizer"]: []}], route


def test_both_http_functions_have_function_urls(transformed: dict[str, Any]) -> None:
    urls = {
        url["Properties"]["TargetFunctionArn"]["Ref"]: url["Properties"]
        for url in _resources(transformed, "AWS::Lambda::Url").values()
    }
    assert set(urls) == {"TasksFunctionAliaslive", "ExportFunctionAliaslive"}  # the URLs invoke the alias
    assert urls["ExportFunctionAliaslive"]["InvokeMode"] == "RESPONSE_STREAM"
    for properties in urls.values():
        assert properties["Cors"]["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}


def test_alarms_cover_functions_api_urls_and_table(transformed: dict[str, Any]) -> None:
    alarms = list(_resources(transformed, "AWS::CloudWatch::Alarm").values())
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]

    def watched(namespace: str, metric: str) -> list[Any]:
        found = []
        for alarm in alarms:
            properties = alarm["Properties"]
            stats = [properties] + [
                m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m
            ]
            for stat in stats:
                if stat.get("Namespace") == namespace and stat.get("MetricName") == metric:
                    found.append(stat["Dimensions"][0]["Value"])
        return found

    for function in FUNCTIONS:
        for metric in ("Errors", "Throttles", "Duration"):
            assert {"Ref": function} in watched("AWS/Lambda", metric), f"no {metric} alarm for {function}"
    assert {"Ref": "TasksFunction"} in watched("AWS/Lambda", "Url5xxCount")
    assert {"Ref": "ExportFunction"} in watched("AWS/Lambda", "Url5xxCount")
    assert watched("AWS/ApiGateway", "5xx") == [{"Ref": "HttpApi"}]
    assert {"Ref": "TasksTable"} in watched("AWS/DynamoDB", "ReadThrottleEvents")
    assert {"Ref": "TasksTable"} in watched("AWS/DynamoDB", "WriteThrottleEvents")
