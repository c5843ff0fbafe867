"""Each function's execution role as AWS builds it: the SAM transform's policies, with the local ARNs.

The SAM transform (tools/transform_template.py, run with the SAM CLI's interpreter from `make tools`)
turns a function's `Policies`, `DeadLetterQueue` and `Tracing` into an `AWS::IAM::Role`; this module
reads those roles, adds the documents of the AWS managed policies they attach (kept below as data), and
resolves `!GetAtt`/`!Sub`/`!Ref` with local/template.py's resolver against the local stack's names: account
123456789012, us-east-1, the stack's table, bucket, queue and secret names. A role that attaches another
managed policy, or names a resource the local stack has no ARN for, is a `TemplateError`.

Each function signs its requests with an access key id naming it (`access_key_id`), so the AWS stand-in
knows whose policies to apply (local/iam_gate.py).
"""

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME, REPO_ROOT
from local.template import DEFAULT_TEMPLATE, FUNCTION, Template, TemplateError, require_resolved

SAM_PYTHON = Path(os.environ.get("SAM_BIN", REPO_ROOT / ".tools" / "sam" / "bin" / "sam")).parent / "python"
ACCESS_KEY_PREFIX = "role"  # a function's access key id: role<logical id> (DynamoDB Local takes only A-Z, a-z, 0-9)
STREAM_LABEL = "2026-01-01T00:00:00.000"  # a table's stream ARN when the caller knows no real one

# The AWS managed policies SAM attaches (AWS's current versions, as documents).
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXrayWriteOnlyAccess.html
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": "*",
            }
        ],
    },
}


@dataclass(frozen=True)
class Role:
    function: str  # the function's logical id
    inline: tuple[dict[str, Any], ...]  # the role's own policy documents, resolved
    managed: tuple[str, ...]  # ARNs of the AWS managed policies it attaches

    @property
    def policies(self) -> list[dict[str, Any]]:
        return [*self.inline, *(MANAGED_POLICIES[arn] for arn in self.managed)]

    @property
    def access_key_id(self) -> str:
        return access_key_id(self.function)


def access_key_id(function: str) -> str:
    return f"{ACCESS_KEY_PREFIX}{function}"


def function_of(access_key: str) -> str | None:
    """The function whose credentials carry this access key id (None: not a function's)."""
    return access_key.removeprefix(ACCESS_KEY_PREFIX) if access_key.startswith(ACCESS_KEY_PREFIX) else None


def queue_name(logical_id: str) -> str:
    """A queue of the template, in the AWS stand-in."""
    return f"{LOCAL_STACK_NAME}-{logical_id}"


def transformed(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template after the SAM transform (run once per template content in a process)."""
    return json.loads(_transform(Path(path).resolve(), Path(path).read_bytes()))


@lru_cache(maxsize=8)
def _transform(path: Path, content: bytes) -> str:
    if not SAM_PYTHON.exists():
        raise TemplateError(f"{SAM_PYTHON} is missing: `make tools` installs the SAM CLI the roles are read with")
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "transformed.json"
        script = REPO_ROOT / "tools" / "transform_template.py"
        result = subprocess.run(
            [str(SAM_PYTHON), str(script), str(path), str(output)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise TemplateError(f"the SAM transform of {path} failed:\n{result.stderr}")
        return output.read_text(encoding="utf-8")


def local_references(
    template: Template, *, stream_arns: Mapping[str, str] | None = None, secret_arns: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What `!Ref` and `!GetAtt` give locally for the template's tables, buckets, queues, event buses and secrets.

    `template.resource_names` names the tables and buckets. A secret's ARN ends with six random characters
    (AWS and moto alike): the one `secret_arns` gives, else `?` wildcards; a stream's, its creation time:
    the one `stream_arns` gives, else STREAM_LABEL.
    """
    arn = f"{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}"
    names, attributes = dict(template.resource_names), {}
    for logical_id in template.logical_ids("AWS::DynamoDB::Table"):
        table = f"arn:aws:dynamodb:{arn}:table/{names[logical_id]}"
        stream = (stream_arns or {}).get(logical_id, f"{table}/stream/{STREAM_LABEL}")
        attributes[logical_id] = {"Arn": table, "StreamArn": stream}
    for logical_id in template.logical_ids("AWS::S3::Bucket"):
        attributes[logical_id] = {"Arn": f"arn:aws:s3:::{names[logical_id]}"}
    for logical_id in template.logical_ids("AWS::SQS::Queue"):
        name = queue_name(logical_id)
        names[logical_id] = f"https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{name}"
        attributes[logical_id] = {"Arn": f"arn:aws:sqs:{arn}:{name}", "QueueName": name}
    for logical_id in template.logical_ids("AWS::Events::EventBus"):
        name = str(template.properties(logical_id, "AWS::Events::EventBus")["Name"])
        names[logical_id] = name
        attributes[logical_id] = {"Arn": f"arn:aws:events:{arn}:event-bus/{name}", "Name": name}
    for logical_id in template.logical_ids("AWS::SecretsManager::Secret"):
        name = template.properties(logical_id, "AWS::SecretsManager::Secret")["Name"]
        names[logical_id] = (secret_arns or {}).get(logical_id, f"arn:aws:secretsmanager:{arn}:secret:{name}-??????")
    return names, attributes


def expanded(
    template: Template,
    *,
    document: Mapping[str, Any] | None = None,
    stream_arns: Mapping[str, str] | None = None,
    secret_arns: Mapping[str, str] | None = None,
) -> Template:
    """The SAM transform of `template` (`transformed(its path)` unless `document` is given), resolving with
    the parameters and local names of `template` (the raw one), and the local ARNs of its resources."""
    names, attributes = local_references(template, stream_arns=stream_arns, secret_arns=secret_arns)
    parameters = {name: _text(value) for name, value in template.parameters.items()}
    result = Template(document if document is not None else transformed(_path_of(template)), parameters=parameters)
    for rule in result.logical_ids("AWS::Events::Rule"):
        name = result.properties(rule, "AWS::Events::Rule")["Name"]
        attributes[rule] = {"Arn": f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{name}"}
    result.resource_names.update(names)
    result.attributes.update(attributes)
    return result


def roles(template: Template, **references: Any) -> dict[str, Role]:
    """Every function's role, resolved locally (`references`: what `expanded` takes)."""
    resolved = expanded(template, **references)
    found = {}
    for function in template.logical_ids(FUNCTION):
        role_id = f"{function}Role"
        properties = resolved.properties(role_id, "AWS::IAM::Role")
        managed = tuple(properties.get("ManagedPolicyArns") or [])
        unknown = set(managed) - set(MANAGED_POLICIES)
        if unknown:
            raise TemplateError(f"{role_id} attaches managed policies with no local document: {sorted(unknown)}")
        inline = tuple(policy["PolicyDocument"] for policy in properties.get("Policies") or [])
        require_resolved(inline, f"the policies of {role_id}")
        found[function] = Role(function, inline, managed)
    return found


def _path_of(template: Template) -> Path:
    return template.path or DEFAULT_TEMPLATE


def _text(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


# --- what the event sources need of the roles ------------------------------------------------------------

# Lambda reads a DynamoDB stream with the function's role: "dynamodb:DescribeStream, dynamodb:GetRecords,
# dynamodb:GetShardIterator, dynamodb:ListStreams" (execution role permissions).
DYNAMODB_STREAM_PAGE = "https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html#events-dynamodb-permissions"
STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")
# An on-failure destination and a function's dead-letter queue are written with the function's role.
ON_FAILURE_PAGE = "https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html"
DEAD_LETTER_PAGE = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq"


@dataclass(frozen=True)
class Need:
    """What one event source needs of a function's role: `action` on `resource`, as documented at `page`."""

    source: str
    function: str
    action: str
    resource: str
    page: str


def event_source_needs(resolved: Template) -> list[Need]:
    """What the event sources of an `expanded` template need of the functions' roles, by source type; a
    source or destination of a type with no documented requirements here is a `TemplateError`."""
    needs = []
    for name in resolved.logical_ids("AWS::Lambda::EventSourceMapping"):
        properties = resolved.properties(name, "AWS::Lambda::EventSourceMapping")
        function = function_named(resolved, resolved.resources[name]["Properties"]["FunctionName"])
        source = str(properties["EventSourceArn"])
        if not re.fullmatch(r"arn:aws:dynamodb:[^:]+:[^:]+:table/[^/]+/stream/.+", source):
            raise TemplateError(f"{name}: event source {source} is of a type with no documented requirements here")
        needs += [Need(name, function, action, source, DYNAMODB_STREAM_PAGE) for action in STREAM_ACTIONS]
        destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if destination:
            needs.append(Need(name, function, _send_action(name, str(destination)), str(destination), ON_FAILURE_PAGE))
    for function in resolved.logical_ids("AWS::Lambda::Function"):
        target = (resolved.properties(function, "AWS::Lambda::Function").get("DeadLetterConfig") or {}).get("TargetArn")
        if target:
            where = f"{function}.DeadLetterConfig"
            needs.append(Need(where, function, _send_action(where, str(target)), str(target), DEAD_LETTER_PAGE))
    return needs


def function_named(resolved: Template, reference: Any) -> str:
    """The function logical id a `Ref` (function, alias or version) or `Fn::GetAtt [X, Arn]` names."""
    logical_id = reference.get("Ref") if isinstance(reference, dict) else None
    if logical_id is None and isinstance(reference, dict) and "Fn::GetAtt" in reference:
        logical_id = reference["Fn::GetAtt"][0]
    body = resolved.resources.get(str(logical_id)) or {}
    if body.get("Type") in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
        return function_named(resolved, body["Properties"]["FunctionName"])
    if body.get("Type") != "AWS::Lambda::Function":
        raise TemplateError(f"{reference!r} names no function")
    return str(logical_id)


def _send_action(where: str, arn: str) -> str:
    if arn.startswith("arn:aws:sqs:"):
        return "sqs:SendMessage"
    if arn.startswith("arn:aws:sns:"):
        return "sns:Publish"
    raise TemplateError(f"{where}: destination {arn} is of a type with no documented requirements here")
