"""Every function's role (and the resource policies around it) against what AWS requires of it.

Event sources: for each event source of the SAM-transformed template, what AWS documents that it needs
is derived from its type and checked with local/iam.py against the role (or the Lambda permission / queue
policy that AWS checks instead). A new source of a known type is checked without a new test; a source of
a type this module does not know fails `test_every_event_source_is_of_a_known_type`.

What the code needs is checked where the code runs: the local stack's AWS stand-in authorizes every
request of a function with its role (local/iam_gate.py), so the end-to-end suites fail on a missing grant.
The AWS managed policies SAM attaches (logs and X-Ray, for the Lambda platform) are checked to be those two.
"""

import json
from typing import Any

import pytest

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.iam import Decision, evaluate, evaluate_resource_policy, matches
from local.roles import MANAGED_POLICIES, Role, event_source_needs, expanded, function_named, roles
from local.template import Template

pytestmark = pytest.mark.template

NAMES = {"TasksTable": "tasks", "AttachmentsBucket": "attachments"}
EVENTBRIDGE_PAGE = (
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-lambda-permissions"
)
EVENTBRIDGE_DLQ_PAGE = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html#eb-dlq-perms"
ROTATION_PAGE = (
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotating-secrets-required-permissions-function.html"
)
URL_PAGE = "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html#urls-auth-none"
API_PAGE = "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html#http-api-develop-integrations-lambda.permissions"

# The resource types through which something invokes a function or receives what it could not process.
EVENT_SOURCE_TYPES = {
    "AWS::Lambda::EventSourceMapping",
    "AWS::Events::Rule",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::Lambda::Url",
    "AWS::ApiGatewayV2::Api",
}
# Types that could invoke a function but that this module has no requirements for: a template using them
# fails until it has.
UNKNOWN_SOURCE_TYPES = {
    "AWS::ApiGateway::RestApi",
    "AWS::SNS::Subscription",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Scheduler::Schedule",
    "AWS::Pipes::Pipe",
    "AWS::IoT::TopicRule",
    "AWS::Logs::SubscriptionFilter",
    "AWS::Cognito::UserPool",
    "AWS::S3::Bucket",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(resource_names=NAMES)


@pytest.fixture(scope="module")
def resolved(template: Template) -> Template:
    result = expanded(template)
    result.resource_names.update({api: f"{api.lower()}id" for api in result.logical_ids("AWS::ApiGatewayV2::Api")})
    return result


@pytest.fixture(scope="module")
def function_roles(template: Template) -> dict[str, Role]:
    return roles(template)


def invoke_permissions(resolved: Template) -> list[dict[str, Any]]:
    """Every AWS::Lambda::Permission, resolved, with `Function` (the logical id it lets invoke)."""
    found = []
    for name in resolved.logical_ids("AWS::Lambda::Permission"):
        properties = resolved.properties(name, "AWS::Lambda::Permission")
        function = function_named(resolved, resolved.resources[name]["Properties"]["FunctionName"])
        found.append({**properties, "Function": function, "LogicalId": name})
    return found


def permitted(
    permissions: list[dict[str, Any]], function: str, principal: str, action: str, source_arn: str | None, **extra: Any
) -> bool:
    """Whether a Lambda permission lets `principal` call `action` on `function` from `source_arn`."""
    for permission in permissions:
        if (permission["Function"], permission["Principal"], permission["Action"]) != (function, principal, action):
            continue
        if source_arn is not None and not matches(str(permission.get("SourceArn", "*")), source_arn):
            continue
        if all(permission.get(key) == value for key, value in extra.items()):
            return True
    return False


# --- event sources: the role ---------------------------------------------------------------------------


def test_every_event_source_is_of_a_known_type(resolved: Template) -> None:
    used = {body["Type"] for body in resolved.resources.values()}
    assert used & EVENT_SOURCE_TYPES, "no event source found: the transform changed"
    unknown = {name for kind in UNKNOWN_SOURCE_TYPES for name in resolved.logical_ids(kind)}
    unknown -= set(resolved.logical_ids("AWS::Cognito::UserPool"))  # the pool's LambdaConfig, checked below
    unknown -= {n for n in resolved.logical_ids("AWS::S3::Bucket") if not _bucket_notifies_lambda(resolved, n)}
    subscriptions = resolved.logical_ids("AWS::SNS::Subscription")
    unknown -= {n for n in subscriptions if resolved.properties(n, "AWS::SNS::Subscription")["Protocol"] != "lambda"}
    assert not unknown, f"event sources with no documented requirements here: {sorted(unknown)}"
    for pool in resolved.logical_ids("AWS::Cognito::UserPool"):
        assert not resolved.resources[pool]["Properties"].get("LambdaConfig"), f"{pool} invokes functions"
    for permission in invoke_permissions(resolved):
        known = {"apigateway.amazonaws.com", "events.amazonaws.com", "secretsmanager.amazonaws.com", "*"}
        assert permission["Principal"] in known, f"{permission['LogicalId']}: an invoker this module does not check"


def _bucket_notifies_lambda(resolved: Template, bucket: str) -> bool:
    notifications = resolved.resources[bucket]["Properties"].get("NotificationConfiguration") or {}
    return bool(notifications.get("LambdaConfigurations"))


def test_each_role_grants_what_its_event_sources_need(resolved: Template, function_roles: dict[str, Role]) -> None:
    needs = event_source_needs(resolved)
    assert any(need.action == "dynamodb:GetRecords" for need in needs), "the table stream mapping was not found"
    missing = [
        need
        for need in needs
        if evaluate(need.action, need.resource, identity=function_roles[need.function].policies) is not Decision.ALLOWED
    ]
    assert not missing, "\n".join(
        f"{n.function}'s role lacks {n.action} on {n.resource} ({n.source}; see {n.page})" for n in missing
    )


def test_a_stream_grant_on_the_table_alone_would_not_do(resolved: Template, function_roles: dict[str, Role]) -> None:
    """The stream has an ARN of its own: a grant on the table ARN does not cover it (a guard of the check)."""
    for need in [n for n in event_source_needs(resolved) if n.action == "dynamodb:GetRecords"]:
        table_only = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": need.action, "Resource": need.resource.split("/stream/")[0]}],
        }
        assert evaluate(need.action, need.resource, identity=[table_only]) is Decision.IMPLICIT_DENY


# --- event sources: the invoke permissions and resource policies ------------------------------------------


def test_eventbridge_rules_may_invoke_their_targets_and_reach_their_dead_letter_queues(resolved: Template) -> None:
    """EVENTBRIDGE_PAGE: a Lambda permission for events.amazonaws.com from the rule's ARN; EVENTBRIDGE_DLQ_PAGE:
    the queue policy lets events.amazonaws.com send, with aws:SourceArn the rule's ARN."""
    permissions = invoke_permissions(resolved)
    rules = resolved.logical_ids("AWS::Events::Rule")
    assert rules, "no EventBridge rule: the upload notifications changed"
    for rule in rules:
        rule_arn = resolved.attributes[rule]["Arn"]
        for raw_target, target in zip(
            resolved.resources[rule]["Properties"]["Targets"],
            resolved.properties(rule, "AWS::Events::Rule")["Targets"],
            strict=True,
        ):
            function = function_named(resolved, raw_target["Arn"])
            assert permitted(permissions, function, "events.amazonaws.com", "lambda:InvokeFunction", rule_arn), (
                rule,
                EVENTBRIDGE_PAGE,
            )
            queue = (target.get("DeadLetterConfig") or {}).get("Arn")
            if queue:
                assert _queue_allows(resolved, str(queue), "events.amazonaws.com", rule_arn), (
                    rule,
                    queue,
                    EVENTBRIDGE_DLQ_PAGE,
                )
                assert not _queue_allows(resolved, str(queue), "events.amazonaws.com", rule_arn + "-other")


def _queue_allows(resolved: Template, queue_arn: str, service: str, source_arn: str) -> bool:
    for name in resolved.logical_ids("AWS::SQS::QueuePolicy"):
        properties = resolved.properties(name, "AWS::SQS::QueuePolicy")
        context = {"aws:SourceArn": source_arn, "aws:SecureTransport": "true"}
        decision = evaluate_resource_policy(
            "sqs:SendMessage",
            queue_arn,
            policy=properties["PolicyDocument"],
            principal={"Service": service},
            context=context,
        )
        if decision is Decision.ALLOWED:
            return True
    return False


def test_secrets_manager_may_invoke_the_rotation_function(resolved: Template) -> None:
    """ROTATION_PAGE: the rotation function's resource policy lets secretsmanager.amazonaws.com invoke it."""
    permissions = invoke_permissions(resolved)
    schedules = resolved.logical_ids("AWS::SecretsManager::RotationSchedule")
    assert schedules
    for schedule in schedules:
        raw = resolved.resources[schedule]["Properties"]
        function = function_named(resolved, raw["RotationLambdaARN"])
        secret = resolved.properties(schedule, "AWS::SecretsManager::RotationSchedule")["SecretId"]
        assert permitted(permissions, function, "secretsmanager.amazonaws.com", "lambda:InvokeFunction", str(secret)), (
            schedule,
            ROTATION_PAGE,
        )


def test_public_function_urls_may_be_invoked(resolved: Template) -> None:
    """URL_PAGE: AuthType NONE needs a permission for lambda:InvokeFunctionUrl by "*" with FunctionUrlAuthType NONE."""
    permissions = invoke_permissions(resolved)
    urls = resolved.logical_ids("AWS::Lambda::Url")
    assert urls
    for url in urls:
        properties = resolved.properties(url, "AWS::Lambda::Url")
        function = function_named(resolved, resolved.resources[url]["Properties"]["TargetFunctionArn"])
        if properties["AuthType"] == "NONE":
            assert permitted(
                permissions, function, "*", "lambda:InvokeFunctionUrl", None, FunctionUrlAuthType="NONE"
            ), (url, URL_PAGE)


def test_the_http_api_may_invoke_the_function_of_every_route(resolved: Template) -> None:
    """API_PAGE: a permission for apigateway.amazonaws.com whose SourceArn covers each route's ARN."""
    permissions = invoke_permissions(resolved)
    checked = 0
    for api in resolved.logical_ids("AWS::ApiGatewayV2::Api"):
        api_id = str(resolved.resource_names.get(api, api))
        for path, methods in resolved.resources[api]["Properties"]["Body"]["paths"].items():
            for method, operation in methods.items():
                integration = operation.get("x-amazon-apigateway-integration") or {}
                uri = json.dumps(integration.get("uri"))
                function = next(
                    f
                    for f in resolved.logical_ids("AWS::Lambda::Function")
                    if f"${{{f}Alias" in uri or f"${{{f}.Arn" in uri
                )
                route = path.replace("{", "").replace("}", "")
                arn = f"arn:aws:execute-api:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{api_id}/$default/{method.upper()}{route}"
                assert permitted(permissions, function, "apigateway.amazonaws.com", "lambda:InvokeFunction", arn), (
                    arn,
                    API_PAGE,
                )
                checked += 1
    assert checked >= 10


# --- least privilege: nothing granted that nothing uses ---------------------------------------------------


def test_only_the_managed_policies_of_the_lambda_platform(function_roles: dict[str, Role]) -> None:
    for role in function_roles.values():
        assert set(role.managed) == set(MANAGED_POLICIES), role.function
