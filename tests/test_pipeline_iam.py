"""The pipeline cannot be turned against prod (pipeline/bootstrap.yaml), decided by local/iam.py, the policy
evaluation the functions' roles are tested with.

The worst case is the single-account set-up the README describes: dev and prod bootstrapped side by side in one
account. Each stage's bootstrap is resolved with concrete values (account, region, its AppStackName and
GitHub environment, its boundary's ARN), and the requests below carry the condition keys AWS puts in
their context: the target's tags (aws:ResourceTag), the tags a create or tag call sets (aws:RequestTag,
aws:TagKeys), the boundary a role gets or has (iam:PermissionsBoundary), the service a role is passed to
(iam:PassedToService), the function a stream mapping invokes (lambda:FunctionArn).
"""

import json
import os
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME
from local.iam import Decision, as_list, evaluate, matches
from local.roles import roles, transformed
from local.template import FUNCTION, Template, Unresolved, load_yaml, require_resolved
from tools.stack_outputs import parameter_overrides, stack_for

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "pipeline" / "bootstrap.yaml"
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = f"{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}"
ALLOWED, IMPLICIT, EXPLICIT = Decision.ALLOWED, Decision.IMPLICIT_DENY, Decision.EXPLICIT_DENY
USER_ADMINISTRATION = (
    "cognito-idp:AdminCreateUser",
    "cognito-idp:AdminSetUserPassword",
    "cognito-idp:AdminInitiateAuth",
    "cognito-idp:AdminDeleteUser",
)
KEY_ADMINISTRATION = (
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:UpdateKeyDescription",
)
BOUNDARY_CHANGES = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
)


@dataclass(frozen=True)
class Stage:
    environment: str  # the GitHub environment: also the stage tag of its pool and key
    stack: str  # the application stack (samconfig.toml), AppStackName

    @property
    def boundary(self) -> str:
        return f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:policy/{self.stack}-permissions-boundary"

    def role(self, logical_id: str = "TasksFunctionRole") -> str:
        return f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{self.stack}-{logical_id}-1A2B3C4D5E6F"

    def function(self, logical_id: str = "TasksFunction") -> str:
        return f"arn:aws:lambda:{ACCOUNT}:function:{self.stack}-{logical_id}-AbCdEf123456"

    @property
    def pool(self) -> str:
        pool_id = {"dev": "us-east-1_DevPool01", "prod": "us-east-1_ProdPool1"}[self.environment]
        return f"arn:aws:cognito-idp:{ACCOUNT}:userpool/{pool_id}"

    @property
    def key(self) -> str:
        key_id = {"dev": "1111aaaa-2222-3333-4444-555566667777", "prod": "9999ffff-8888-7777-6666-555544443333"}
        return f"arn:aws:kms:{ACCOUNT}:key/{key_id[self.environment]}"

    @property
    def tagged(self) -> dict[str, str]:
        """The context of a request on a resource of this stage (its pool or key carries stage=...)."""
        return {"aws:ResourceTag/stage": self.environment}


DEV = Stage("dev", stack_for("dev").name)
PROD = Stage("prod", stack_for("prod").name)
STAGES = (DEV, PROD)


def other_than(stage: Stage) -> Stage:
    return next(other for other in STAGES if other != stage)


@cache
def bootstrap(stage: Stage) -> Template:
    """pipeline/bootstrap.yaml as CloudFormation resolves it for this stage."""
    bucket = f"serverless-tasks-pipeline-{stage.environment}-artifactsbucket-1x2y3z4w5v6u"
    return Template(
        load_yaml(BOOTSTRAP),
        parameters={
            "GitHubOrg": "octo-org",
            "GitHubRepo": "serverless-tasks",
            "GitHubEnvironment": stage.environment,
            "AppStackName": stage.stack,
            "CreateOidcProvider": "true",
        },
        resource_names={"PermissionsBoundary": stage.boundary, "ArtifactsBucket": bucket},
        attributes={
            "ArtifactsBucket": {"Arn": f"arn:aws:s3:::{bucket}"},
            "CloudFormationRole": {
                "Arn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/serverless-tasks-pipeline-{stage.environment}-CfnRole"
            },
        },
    )


def role_policies(stage: Stage, role: str) -> list[dict[str, Any]]:
    properties = bootstrap(stage).properties(role, "AWS::IAM::Role")
    documents = []
    for policy in properties["Policies"]:
        document = dict(policy["PolicyDocument"])
        # An `!If [..., statement, !Ref AWS::NoValue]` that is off leaves nothing.
        document["Statement"] = [s for s in document["Statement"] if not isinstance(s, Unresolved)]
        require_resolved(document, f"{role}'s policy")
        documents.append(document)
    return documents


def boundary_policy(stage: Stage) -> dict[str, Any]:
    document: dict[str, Any] = bootstrap(stage).properties("PermissionsBoundary", "AWS::IAM::ManagedPolicy")[
        "PolicyDocument"
    ]
    require_resolved(document, "the permissions boundary")
    return document


def deploy_role(stage: Stage, action: str, resource: str, **context: str) -> Decision:
    return evaluate(action, resource, identity=role_policies(stage, "DeployRole"), context=context)


def cloudformation(stage: Stage, action: str, resource: str, **context: str | list[str]) -> Decision:
    return evaluate(action, resource, identity=role_policies(stage, "CloudFormationRole"), context=context)


def tags(**values: str) -> dict[str, str | list[str]]:
    """The context of a request that sets these tags."""
    context: dict[str, str | list[str]] = {f"aws:RequestTag/{key}": value for key, value in values.items()}
    context["aws:TagKeys"] = list(values)
    return context


# --- the dev deploy role and the users of the pools -----------------------------------------------------


@pytest.mark.parametrize("action", USER_ADMINISTRATION)
def test_a_dev_job_cannot_touch_a_user_of_the_prod_pool(action: str) -> None:
    assert deploy_role(DEV, action, PROD.pool, **PROD.tagged) is not ALLOWED
    assert deploy_role(DEV, action, PROD.pool) is not ALLOWED  # a pool without the tag: not dev's either
    assert deploy_role(DEV, action, DEV.pool, **DEV.tagged) is ALLOWED  # the smoke tests' user, in dev's pool


@pytest.mark.parametrize("action", USER_ADMINISTRATION)
def test_no_prod_job_administers_users_at_all(action: str) -> None:
    for stage in STAGES:
        assert deploy_role(PROD, action, stage.pool, **stage.tagged) is not ALLOWED


# --- the CloudFormation role and roles ------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.environment)
def test_cloudformation_creates_a_role_only_with_the_boundary_attached(stage: Stage) -> None:
    role = stage.role()
    assert cloudformation(stage, "iam:CreateRole", role) is EXPLICIT
    other = other_than(stage)
    assert cloudformation(stage, "iam:CreateRole", role, **{"iam:PermissionsBoundary": other.boundary}) is EXPLICIT
    assert cloudformation(stage, "iam:CreateRole", role, **{"iam:PermissionsBoundary": stage.boundary}) is ALLOWED


@given(
    name=st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-ABCDEFRole0123456789"), min_size=1, max_size=40),
    own_prefix=st.booleans(),
    boundary=st.sampled_from(["own", "other", "none", "admin"]),
    action=st.sampled_from(
        ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"]
    ),
)
def test_any_role_any_policy_change_needs_the_own_boundary_and_the_own_name(
    name: str, own_prefix: bool, boundary: str, action: str
) -> None:
    role = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{DEV.stack + '-' if own_prefix else ''}{name}"
    context = {
        "own": {"iam:PermissionsBoundary": DEV.boundary},
        "other": {"iam:PermissionsBoundary": PROD.boundary},
        "admin": {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "none": {},
    }[boundary]
    expected = role.split("/", 1)[1].startswith(f"{DEV.stack}-") and boundary == "own"
    assert (cloudformation(DEV, action, role, **context) is ALLOWED) == expected


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.environment)
def test_cloudformation_cannot_remove_or_change_the_boundary(stage: Stage) -> None:
    own = {"iam:PermissionsBoundary": stage.boundary}
    assert cloudformation(stage, "iam:DeleteRolePermissionsBoundary", stage.role(), **own) is EXPLICIT
    for action in BOUNDARY_CHANGES:
        assert cloudformation(stage, action, stage.boundary) is EXPLICIT, action
    admin = {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}
    assert cloudformation(stage, "iam:PutRolePermissionsBoundary", stage.role(), **admin) is EXPLICIT


SERVICES = ["lambda.amazonaws.com", "codedeploy.amazonaws.com", "ec2.amazonaws.com", "ecs-tasks.amazonaws.com",
            "cloudformation.amazonaws.com", "glue.amazonaws.com", "states.amazonaws.com"]  # fmt: skip


@given(service=st.sampled_from(SERVICES), target=st.sampled_from(["own", "prod", "bootstrap", "other"]))
def test_cloudformation_passes_only_the_stacks_roles_and_only_to_lambda_and_codedeploy(
    service: str, target: str
) -> None:
    role = {
        "own": DEV.role(),
        "prod": PROD.role(),
        "bootstrap": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/serverless-tasks-pipeline-dev-DeployRole-1A2B",
        "other": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/OrganizationAccountAccessRole",
    }[target]
    decision = cloudformation(DEV, "iam:PassRole", role, **{"iam:PassedToService": service})
    expected = target == "own" and service in ("lambda.amazonaws.com", "codedeploy.amazonaws.com")
    assert (decision is ALLOWED) == expected


# --- the CloudFormation role and the stage's key and pool ----------------------------------------------


@pytest.mark.parametrize("action", KEY_ADMINISTRATION)
def test_cloudformation_administers_only_its_own_stages_key(action: str) -> None:
    assert cloudformation(DEV, action, PROD.key, **PROD.tagged) is not ALLOWED
    assert cloudformation(DEV, action, PROD.key) is not ALLOWED  # an untagged key is no stage's
    assert cloudformation(DEV, action, DEV.key, **DEV.tagged) is ALLOWED
    assert cloudformation(PROD, action, DEV.key, **DEV.tagged) is not ALLOWED


@pytest.mark.parametrize(
    ("service", "create", "resource", "untag"),
    [
        ("kms", "kms:CreateKey", lambda stage: stage.key, "kms:UntagResource"),
        ("cognito-idp", "cognito-idp:CreateUserPool", lambda stage: stage.pool, "cognito-idp:UntagResource"),
    ],
)
def test_the_stage_tag_is_set_at_creation_and_never_moved_or_removed(
    service: str, create: str, resource: Any, untag: str
) -> None:
    assert cloudformation(DEV, create, "*", **tags(stage="dev")) is ALLOWED
    assert cloudformation(DEV, create, "*", **tags(stage="prod")) is not ALLOWED
    assert cloudformation(DEV, create, "*") is not ALLOWED  # untagged: it would be no stage's
    own = resource(DEV)
    tag = f"{service}:TagResource"
    assert cloudformation(DEV, tag, own, **DEV.tagged, **tags(stage="prod")) is not ALLOWED
    assert cloudformation(DEV, tag, own, **DEV.tagged, **tags(owner="team")) is ALLOWED
    assert cloudformation(DEV, untag, own, **DEV.tagged, **{"aws:TagKeys": ["stage"]}) is not ALLOWED
    assert cloudformation(DEV, untag, own, **DEV.tagged, **{"aws:TagKeys": ["owner"]}) is ALLOWED
    assert cloudformation(DEV, tag, resource(PROD), **PROD.tagged, **tags(stage="dev")) is not ALLOWED


@pytest.mark.parametrize(
    "action", ["cognito-idp:UpdateUserPool", "cognito-idp:DeleteUserPool", "cognito-idp:UpdateUserPoolClient"]
)
def test_cloudformation_changes_only_its_own_stages_pool(action: str) -> None:
    assert cloudformation(DEV, action, PROD.pool, **PROD.tagged) is not ALLOWED
    assert cloudformation(DEV, action, DEV.pool, **DEV.tagged) is ALLOWED


def test_a_stream_mapping_is_cloudformations_only_when_it_invokes_the_stacks_function() -> None:
    mapping = f"arn:aws:lambda:{ACCOUNT}:event-source-mapping:0f6e5d4c-3b2a-1908-7654-321fedcba098"
    for action in (
        "lambda:CreateEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
        "lambda:DeleteEventSourceMapping",
    ):
        resource = "*" if action == "lambda:CreateEventSourceMapping" else mapping
        assert cloudformation(DEV, action, resource, **{"lambda:FunctionArn": DEV.function()}) is ALLOWED
        assert cloudformation(DEV, action, resource, **{"lambda:FunctionArn": PROD.function()}) is not ALLOWED


def other_stages(resource: str, stage: Stage, other: Stage) -> str:
    """A resource pattern of `stage`'s policy as the same resource of `other`, wildcards made concrete."""
    return resource.replace(stage.stack, other.stack).replace("*", "x1").replace("?", "a")


# Names that are not a stage's by construction: AWS's own (the SAM transform, the Web Adapter layer,
# CodeDeploy's deployment configurations, service-linked roles) and the bootstrap's own artifacts bucket.
SHARED = ("aws:transform/", ":753240598075:layer:", ":deploymentconfig:", "role/aws-service-role/", "artifactsbucket")
# What one account cannot separate (README, "The pipeline": one account per stage closes these), as
# (resource, action) patterns. HTTP APIs have random ids, and their routes, integrations and stages take
# no tags of their own (nor inherit the API's for access control, unlike REST APIs'). A stream mapping's
# id is random too, and its tag calls take no lambda:FunctionArn (what it invokes is scoped, test above).
# CodeDeploy's StopDeployment and CloudWatch Logs' delivery, resource and index policies have no resource
# type: they are the account's.
ONE_ACCOUNT_GAPS = (
    ("arn:aws:apigateway:*", "apigateway:*"),
    ("arn:aws:lambda:*:event-source-mapping:*", "lambda:*Tag*"),
    ("*", "codedeploy:StopDeployment"),
    ("*", "logs:*LogDelivery"),
    ("*", "logs:*ResourcePolicy"),
    ("*", "logs:*IndexPolicy"),
)
READS = ("Get", "List", "Describe")


def one_account_gap(pattern: str, action: str) -> bool:
    return any(
        (pattern == resource or (resource != "*" and matches(resource, pattern)))
        and matches(actions, action, case_sensitive=False)
        for resource, actions in ONE_ACCOUNT_GAPS
    )


def test_nothing_the_dev_cloudformation_role_may_change_is_prods() -> None:
    """Every change dev's CloudFormation role may make on a resource of its stage, replayed on prod's
    resource of the same name, and every one it may make on any resource (`*`: creations, mappings),
    replayed with prod's tags, boundary and function in the context: none is allowed."""
    context = {
        **PROD.tagged,
        **tags(stage="prod"),
        "iam:PermissionsBoundary": PROD.boundary,
        "iam:PassedToService": "lambda.amazonaws.com",
        "lambda:FunctionArn": PROD.function(),
    }
    reached = []
    for policy in role_policies(DEV, "CloudFormationRole"):
        for statement in (s for s in policy["Statement"] if s["Effect"] == "Allow"):
            for pattern in as_list(statement["Resource"]):
                if any(marker in pattern for marker in SHARED):
                    continue
                target = other_stages(pattern, DEV, PROD) if pattern != "*" else "*"
                for action in as_list(statement["Action"]):
                    if action.split(":")[1].startswith(READS) or one_account_gap(pattern, action):
                        continue
                    if cloudformation(DEV, action, target, **context) is ALLOWED:
                        reached.append((action, target))
    assert reached == []


# --- the boundary holds what the stack's roles need ------------------------------------------------------


def test_the_boundary_is_the_stacks_own_and_grants_no_administration() -> None:
    for stage in STAGES:
        boundary = boundary_policy(stage)
        actions = {action for statement in boundary["Statement"] for action in as_list(statement["Action"])}
        assert not any("*" in action for action in actions)
        assert not {a.split(":")[0] for a in actions} & {"iam", "sts", "organizations", "cloudformation"}
        other = other_than(stage)
        table = f"arn:aws:dynamodb:{ACCOUNT}:table/{other.stack}-TasksTable-1ABC"
        everything = [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
        assert evaluate("dynamodb:GetItem", table, identity=everything, boundary=boundary) is IMPLICIT
        assert evaluate("iam:CreateUser", "*", identity=everything, boundary=boundary) is IMPLICIT


# --- the boundary holds what the stack's roles need, and every role carries it ---------------------------

# The stack's own resources named as CloudFormation names them: <stack>-<LogicalId>-<suffix>, buckets in
# lower case (the local stack's name stands for any stack's).
LOCAL = Stage("dev", LOCAL_STACK_NAME)
STACK_NAMES = {
    "TasksTable": f"{LOCAL_STACK_NAME}-TasksTable-1ABC2DEF3GHI",
    "AttachmentsBucket": f"{LOCAL_STACK_NAME}-attachmentsbucket-1abc2def3ghi",
}
# What CodeDeploy does with the stack's CodeDeployServiceRole in a Lambda deployment, of what
# AWSCodeDeployRoleForLambda allows: read the rollback alarms, read and move the alias
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSCodeDeployRoleForLambda.html).
CODEDEPLOY_ON_FUNCTIONS = ("lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig")


@pytest.fixture(scope="module")
def stack() -> Template:
    return Template.load(TEMPLATE, resource_names=STACK_NAMES)


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    return transformed(TEMPLATE)


def log_groups(stack: Template, function: str) -> list[str]:
    """The ARNs a function's logs go to: its own log group and a stream in it."""
    group = stack.function_properties(function)["LoggingConfig"]["LogGroup"]["Ref"]
    name = stack.properties(group, "AWS::Logs::LogGroup")["LogGroupName"]
    arn = f"arn:aws:logs:{ACCOUNT}:log-group:{name}"
    return [arn, f"{arn}:*", f"{arn}:log-stream:2026/01/01/[$LATEST]0123456789abcdef"]


def requests(statement: dict[str, Any], logs: list[str]) -> list[tuple[str, str]]:
    """The (action, resource) requests an Allow statement stands for: wildcards in its resources filled in;
    a logs grant on `*` (AWSLambdaBasicExecutionRole's), the function's own log group, all it writes to."""
    found = []
    for action in as_list(statement["Action"]):
        for pattern in as_list(statement["Resource"]):
            if pattern == "*" and action.startswith("logs:"):
                found += [(action, arn) for arn in logs]
            else:
                found.append((action, pattern.replace("*", "x1").replace("?", "a")))
    return found


@pytest.mark.template
def test_the_boundary_allows_everything_the_stacks_roles_are_granted(stack: Template, expanded: dict[str, Any]) -> None:
    boundary = boundary_policy(LOCAL)
    outside = []
    for function, role in roles(stack, document=expanded).items():
        for policy in role.policies:
            for statement in policy["Statement"]:
                if statement["Effect"] != "Allow":
                    continue
                for action, resource in requests(statement, log_groups(stack, function)):
                    if evaluate(action, resource, identity=[boundary]) is not ALLOWED:
                        outside.append((function, action, resource))
    assert outside == []


@pytest.mark.template
def test_the_boundary_allows_what_codedeploy_does_with_its_role(stack: Template) -> None:
    boundary = boundary_policy(LOCAL)
    for function in stack.logical_ids(FUNCTION):
        arn = f"arn:aws:lambda:{ACCOUNT}:function:{LOCAL_STACK_NAME}-{function}-AbCdEf123456"
        for action in CODEDEPLOY_ON_FUNCTIONS:
            assert evaluate(action, f"{arn}:live", identity=[boundary]) is ALLOWED, (function, action)
        for alarm in stack.function_properties(function)["DeploymentPreference"].get("Alarms", []):
            name = stack.properties(alarm["Ref"], "AWS::CloudWatch::Alarm")["AlarmName"]
            alarm_arn = f"arn:aws:cloudwatch:{ACCOUNT}:alarm:{name}"
            assert evaluate("cloudwatch:DescribeAlarms", alarm_arn, identity=[boundary]) is ALLOWED, name


@pytest.mark.template
@pytest.mark.parametrize("boundary", [DEV.boundary, ""], ids=["pipeline", "none"])
def test_every_role_of_the_stack_carries_the_boundary_when_one_is_given(
    expanded: dict[str, Any], boundary: str
) -> None:
    stack = Template(expanded, parameters={"PermissionsBoundary": boundary})
    names = stack.logical_ids("AWS::IAM::Role")
    assert {f"{function}Role" for function in Template.load(TEMPLATE).logical_ids(FUNCTION)} < set(names)
    assert "CodeDeployServiceRole" in names
    for name in names:
        given = stack.properties(name, "AWS::IAM::Role").get("PermissionsBoundary")
        if boundary:
            assert given == boundary, name
        else:
            assert isinstance(given, Unresolved) and given.expression == {"Ref": "AWS::NoValue"}, name
    for name in stack.logical_ids("AWS::CodeDeploy::DeploymentGroup"):
        role = expanded["Resources"][name]["Properties"]["ServiceRoleArn"]
        assert role == {"Fn::GetAtt": ["CodeDeployServiceRole", "Arn"]}, name


CFN_LINT_DATA = next((ROOT / ".tools" / "sam" / "lib").glob("python3*/site-packages/cfnlint/data"), None)


@pytest.mark.template
def test_actions_without_a_resource_type_are_granted_on_any_resource() -> None:
    """IAM matches an action that names no resource type only against `*`: scoped to an ARN it is never
    allowed (CreateEventSourceMapping, say, is scoped by its lambda:FunctionArn condition instead)."""
    assert CFN_LINT_DATA is not None, "cfn-lint is missing: `make tools` installs it"
    reference = json.loads((CFN_LINT_DATA / "AdditionalSpecs" / "Policies.json").read_text(encoding="utf-8"))
    unmatchable = []
    for stage in STAGES:
        policies = [
            *role_policies(stage, "DeployRole"),
            *role_policies(stage, "CloudFormationRole"),
            boundary_policy(stage),
        ]
        for statement in (s for policy in policies for s in policy["Statement"] if s["Effect"] == "Allow"):
            if as_list(statement["Resource"]) == ["*"]:
                continue
            for action in as_list(statement["Action"]):
                service, _, name = action.partition(":")
                if not reference[service]["Actions"][name.lower()].get("Resources"):
                    unmatchable.append((stage.environment, statement.get("Sid"), action))
    assert unmatchable == []


# --- the pipeline passes the boundary, and the stage tag the roles scope by ----------------------------


def ci_deploy(env: str, boundary: str) -> subprocess.CompletedProcess[str]:
    """`make ci-deploy` with `echo` for sam: the deploy command the pipeline runs (the build left out)."""
    variables = {"PERMISSIONS_BOUNDARY_ARN": boundary, "ARTIFACTS_BUCKET": "bucket", "CLOUDFORMATION_ROLE_ARN": "role"}
    return subprocess.run(
        ["make", "-s", "ci-deploy", f"ENV={env}", "SAM_BIN=echo", "-o", "build"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}, **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.environment)
def test_the_pipeline_deploys_with_its_bootstraps_boundary_and_the_samconfig_parameters(stage: Stage) -> None:
    deployed = ci_deploy(stage.environment, stage.boundary)
    assert deployed.returncode == 0, deployed.stderr
    overrides = parameter_overrides(stage.environment)
    assert deployed.stdout.rstrip().endswith(f"--parameter-overrides {overrides} PermissionsBoundary={stage.boundary}")
    refused = ci_deploy(stage.environment, "")
    assert refused.returncode != 0 and "PERMISSIONS_BOUNDARY_ARN" in refused.stderr
    assert "deploy" not in refused.stdout


def test_every_deploy_job_gets_the_boundary_from_its_environment() -> None:
    assert load_yaml(BOOTSTRAP)["Outputs"]["PermissionsBoundaryArn"]["Value"] == {"Ref": "PermissionsBoundary"}
    jobs = load_yaml(ROOT / ".github" / "workflows" / "pipeline.yml")["jobs"]
    deploys = [step for job in jobs.values() for step in job["steps"] if "make ci-deploy" in step.get("run", "")]
    assert len(deploys) == len(STAGES)
    for step in deploys:
        assert step["env"]["PERMISSIONS_BOUNDARY_ARN"] == "${{ vars.PERMISSIONS_BOUNDARY_ARN }}"


def test_each_samconfig_stack_is_tagged_with_its_stage() -> None:
    """The tag the bootstrap's roles reach the stack's KMS key by (CloudFormation puts stack tags on it)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for name, section in config.items():
        if isinstance(section, dict):
            deploy = section["deploy"]["parameters"]
            stage = dict(pair.split("=", 1) for pair in shlex.split(deploy["parameter_overrides"]))["StageName"]
            stack_tags = dict(pair.split("=", 1) for pair in shlex.split(deploy["tags"]))
            assert stack_tags["stage"] == stage, name


def test_the_stacks_pool_carries_the_stage_tag_the_pipeline_scopes_by() -> None:
    template = load_yaml(TEMPLATE)
    assert template["Resources"]["UserPool"]["Properties"]["UserPoolTags"] == {"stage": {"Ref": "StageName"}}
    stages = load_yaml(BOOTSTRAP)["Parameters"]["GitHubEnvironment"]["AllowedValues"]
    assert stages == template["Parameters"]["StageName"]["AllowedValues"]  # a bootstrap for every stage
