"""The AWS stand-in authorizes each request as AWS does: the caller's role policies decide (local/iam.py).

A request signed by a function's credentials (access key id `role<logical id>`: SigV4 Authorization
header, presigned query `X-Amz-Credential`, or a presigned POST form's `x-amz-credential`) is mapped to
the IAM actions, resource ARNs and condition keys AWS checks for it (`authorizations`), and each is
evaluated against that function's role; a denied request gets the service's AccessDenied answer. The
stand-in's own key (`local.aws.LOCAL_ACCESS_KEY_ID`: the stack's set-up, pollers and tests) passes, as do
CORS preflights (never authorized by IAM) and the stand-in's own `/_local/` and `/moto-api/` paths. A
request of a function's that this module cannot map, or signed by an unknown key, is denied and logged:
nothing is allowed by default. Every allowed (function, action, resource) is recorded in `used`.
"""

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import xmltodict
from werkzeug.wrappers import Request

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.events import Response
from local.iam import ContextValue, Decision, evaluate
from local.roles import Role, function_of
from local.s3_post import parse_form

logger = logging.getLogger(__name__)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_STREAM_ARN = re.compile(r"arn:aws:dynamodb:[^:|]*:[^:|]*:table/([^/|]+)/stream/([^|/]+)")
_ARN = f"{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}"
# DynamoDB operations on one table, and the IAM action each needs (its own name).
_TABLE_OPERATIONS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "DescribeTable",
    "DescribeTimeToLive",
    "UpdateTable",
    "DeleteTable",
    "CreateTable",
}
# TransactWriteItems and TransactGetItems have no action of their own: each item needs its operation's.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_STREAM_OPERATIONS = {"DescribeStream", "GetShardIterator", "GetRecords"}
_SQS_QUEUE_OPERATIONS = {"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes"}
_SECRET_OPERATIONS = {"GetSecretValue", "PutSecretValue", "DescribeSecret", "UpdateSecretVersionStage"}


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: Mapping[str, ContextValue]


@dataclass(frozen=True, order=True)
class Use:
    """A request of a function's that its role allowed."""

    function: str
    action: str
    resource: str
    context: tuple[tuple[str, str], ...]  # the condition keys of the request


class Unmapped(Exception):
    """A request this module does not know the IAM actions of."""


class IamGate:
    """A `MotoServer` gate: answers AccessDenied for what the caller's role does not allow."""

    def __init__(self, roles: Mapping[str, Role], admin_keys: Iterable[str]):
        self.roles = dict(roles)
        self.admin_keys = set(admin_keys)
        self.used: set[Use] = set()  # what each function was allowed so far
        self.denied: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def uses(self) -> list[Use]:
        with self._lock:
            return sorted(self.used)

    def __call__(self, request: Request) -> Response | None:
        if request.method == "OPTIONS" or request.path.startswith(("/_local/", "/moto-api/")):
            return None
        access_key = access_key_of(request)
        if access_key in self.admin_keys:
            return None
        function = function_of(access_key or "")
        role = self.roles.get(function or "")
        service = service_of(request)
        if role is None:
            logger.error(
                "AWS stand-in: request signed by unknown key %r denied: %s %s", access_key, request.method, request.path
            )
            return access_denied(service, f"The security token included in the request is invalid ({access_key!r})")
        try:
            needed = authorizations(request, service)
        except Unmapped as error:
            logger.error("AWS stand-in: %s's request has no IAM mapping here, denied: %s", role.function, error)
            return access_denied(service, f"not authorized: the local stand-in cannot map this request ({error})")
        for need in needed:
            decision = evaluate(need.action, need.resource, identity=role.policies, context=need.context)
            if decision is not Decision.ALLOWED:
                with self._lock:
                    self.denied.append((role.function, need.action, need.resource))
                logger.error(
                    "AWS stand-in: %s may not %s on %s (%s)", role.function, need.action, need.resource, decision.value
                )
                return access_denied(
                    service,
                    f"User: arn:aws:sts::{LOCAL_ACCOUNT_ID}:assumed-role/{role.function}Role/{role.function} is not "
                    f"authorized to perform: {need.action} on resource: {need.resource} because no identity-based "
                    "policy allows the action",
                )
        with self._lock:
            self.used.update(Use(role.function, n.action, n.resource, _frozen(n.context)) for n in needed)
        return None


USAGE_PATH = "/_local/iam/used"


def usage_endpoint(gate: IamGate) -> Callable[[Request], Response | None]:
    """`GET {aws_endpoint}/_local/iam/used`: what the gate allowed each function so far, for tests."""

    def answer(request: Request) -> Response | None:
        if request.path != USAGE_PATH:
            return None
        body = [{**vars(use), "context": dict(use.context)} for use in gate.uses()]
        return _json(200, body, "application/json")

    return answer


def _frozen(context: Mapping[str, ContextValue]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, ",".join(value) if isinstance(value, list) else value) for key, value in context.items()))


def access_key_of(request: Request) -> str | None:
    """The access key id a request is signed with (header, presigned query, or presigned POST form)."""
    found = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    if found:
        return found.group(1)
    credential = request.args.get("X-Amz-Credential") or request.args.get("AWSAccessKeyId")
    if credential:
        return credential.split("/", 1)[0]
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and "multipart/form-data" in content_type:
        fields = parse_form(content_type, request.get_data()).fields
        credential = fields.get("x-amz-credential") or fields.get("awsaccesskeyid")
        return credential.split("/", 1)[0] if credential else None
    return None


def service_of(request: Request) -> str:
    target = request.headers.get("X-Amz-Target", "")
    if target:
        prefix = target.split(".", 1)[0]
        if prefix.startswith("DynamoDBStreams"):
            return "dynamodbstreams"
        if prefix.startswith("DynamoDB"):
            return "dynamodb"
        if prefix == "AmazonSQS":
            return "sqs"
        return prefix.lower()
    scope = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", request.headers.get("Authorization", ""))
    if scope:
        return scope.group(1)
    credential = request.args.get("X-Amz-Credential", "")
    return credential.split("/")[3] if credential.count("/") >= 3 else "s3"


def authorizations(request: Request, service: str | None = None) -> list[Authorization]:
    """What AWS authorizes for this request: (action, resource ARN, condition keys), all must be allowed."""
    service = service or service_of(request)
    mapper = _MAPPERS.get(service)
    if mapper is None:
        raise Unmapped(f"service {service!r}")
    found = mapper(request)
    if not found:
        raise Unmapped(f"{request.method} {request.path}: nothing to authorize")
    return found


# --- DynamoDB ----------------------------------------------------------------------------------------


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{_ARN}:table/{name}"


def _operation(request: Request) -> tuple[str, dict[str, Any]]:
    operation = request.headers.get("X-Amz-Target", "").split(".", 1)[-1]
    body = json.loads(request.get_data() or b"{}")
    return operation, body


def _dynamodb(request: Request) -> list[Authorization]:
    operation, body = _operation(request)
    if operation in ("Query", "Scan") and body.get("IndexName"):
        resource = f"{table_arn(body['TableName'])}/index/{body['IndexName']}"
        return [Authorization(f"dynamodb:{operation}", resource, {})]
    if operation in _TABLE_OPERATIONS:
        return [Authorization(f"dynamodb:{operation}", table_arn(body["TableName"]), {})]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [Authorization(f"dynamodb:{operation}", table_arn(name), {}) for name in body["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        found = []
        for item in body["TransactItems"]:
            ((kind, detail),) = item.items()
            action = "GetItem" if kind == "Get" else _TRANSACT_ACTIONS.get(kind)
            if action is None:
                raise Unmapped(f"{operation} item {kind}")
            found.append(Authorization(f"dynamodb:{action}", table_arn(detail["TableName"]), {}))
        return found
    raise Unmapped(f"DynamoDB {operation}")


def stream_arn(text: str) -> str:
    """A stream ARN (or a shard iterator that names one) as the local account and region write it."""
    found = _STREAM_ARN.search(text)
    if found is None:
        raise Unmapped(f"no stream ARN in {text[:80]!r}")
    return f"{table_arn(found.group(1))}/stream/{found.group(2)}"


def _dynamodb_streams(request: Request) -> list[Authorization]:
    operation, body = _operation(request)
    if operation not in _STREAM_OPERATIONS:
        raise Unmapped(f"DynamoDB Streams {operation}")
    source = body.get("StreamArn") or body.get("ShardIterator") or ""
    return [Authorization(f"dynamodb:{operation}", stream_arn(source), {})]


# --- S3 -----------------------------------------------------------------------------------------------


def _s3(request: Request) -> list[Authorization]:
    bucket, _, key = unquote(request.path).lstrip("/").partition("/")
    if not bucket:
        raise Unmapped(f"S3 {request.method} without a bucket")
    arn = f"arn:aws:s3:::{bucket}"
    query = request.args
    method = "GET" if request.method == "HEAD" else request.method
    if not key:
        if method == "GET" and set(query) <= {
            "versions",
            "prefix",
            "delimiter",
            "max-keys",
            "list-type",
            "key-marker",
            "version-id-marker",
            "continuation-token",
            "encoding-type",
            "marker",
            "start-after",
        }:
            context = {f"s3:{name}": query[name] for name in ("prefix", "delimiter", "max-keys") if name in query}
            action = "s3:ListBucketVersions" if "versions" in query else "s3:ListBucket"
            return [Authorization(action, arn, context)]
        if method == "POST" and "delete" in query:
            return _delete_objects(arn, request.get_data())
        content_type = request.headers.get("content-type", "")
        if method == "POST" and not query and "multipart/form-data" in content_type:
            form_key = parse_form(content_type, request.get_data()).fields.get("key", "")
            return [Authorization("s3:PutObject", f"{arn}/{form_key}", {})]
        raise Unmapped(f"S3 bucket request {request.method} ?{'&'.join(sorted(query))}")
    object_arn = f"{arn}/{key}"
    subresources = (
        set(query)
        - {
            "versionId",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
        }
        - {name for name in query if name.startswith("response-")}
    )
    if subresources:
        raise Unmapped(f"S3 object request {request.method} ?{'&'.join(sorted(subresources))}")
    versioned = "versionId" in query
    if method == "GET":
        return [Authorization("s3:GetObjectVersion" if versioned else "s3:GetObject", object_arn, {})]
    if method == "PUT" and not request.headers.get("x-amz-copy-source"):
        return [Authorization("s3:PutObject", object_arn, {})]
    if method == "DELETE":
        return _deletion(object_arn, versioned)
    raise Unmapped(f"S3 object request {request.method}")


def _delete_objects(bucket_arn: str, body: bytes) -> list[Authorization]:
    """DeleteObjects: each key is authorized as its own DeleteObject would be."""
    found = []
    objects = (xmltodict.parse(body, process_namespaces=False).get("Delete") or {}).get("Object") or []
    for fields in objects if isinstance(objects, list) else [objects]:
        found += _deletion(f"{bucket_arn}/{fields['Key']}", bool(fields.get("VersionId")))
    return found


def _deletion(object_arn: str, versioned: bool) -> list[Authorization]:
    """ "To delete an object from a bucket, you must always have the s3:DeleteObject permission", and
    s3:DeleteObjectVersion to delete a specific version (Amazon S3 API Reference, DeleteObject and
    DeleteObjects, Permissions)."""
    actions = ["s3:DeleteObject", "s3:DeleteObjectVersion"] if versioned else ["s3:DeleteObject"]
    return [Authorization(action, object_arn, {}) for action in actions]


# --- SQS and Secrets Manager --------------------------------------------------------------------------


def _sqs(request: Request) -> list[Authorization]:
    operation, body = _operation(request)
    if operation not in _SQS_QUEUE_OPERATIONS:
        raise Unmapped(f"SQS {operation}")
    name = urlparse(body["QueueUrl"]).path.rstrip("/").rpartition("/")[2]
    return [Authorization(f"sqs:{operation}", f"arn:aws:sqs:{_ARN}:{name}", {})]


def _events(request: Request) -> list[Authorization]:
    """PutEvents needs events:PutEvents on each bus its entries name (the functions put events, nothing else)."""
    operation, body = _operation(request)
    if operation != "PutEvents":
        raise Unmapped(f"EventBridge {operation}")
    buses = {str(entry.get("EventBusName") or "default") for entry in body.get("Entries", [])}
    return [
        Authorization(
            "events:PutEvents", bus if bus.startswith("arn:") else f"arn:aws:events:{_ARN}:event-bus/{bus}", {}
        )
        for bus in sorted(buses)
    ]


def _secretsmanager(request: Request) -> list[Authorization]:
    operation, body = _operation(request)
    if operation == "GetRandomPassword":
        return [Authorization("secretsmanager:GetRandomPassword", "*", {})]
    if operation not in _SECRET_OPERATIONS:
        raise Unmapped(f"Secrets Manager {operation}")
    secret = str(body.get("SecretId", ""))
    if not secret.startswith("arn:"):
        raise Unmapped(f"Secrets Manager {operation} by name ({secret!r}): the functions name secrets by ARN")
    return [Authorization(f"secretsmanager:{operation}", secret, {})]


_MAPPERS: dict[str, Callable[[Request], list[Authorization]]] = {
    "dynamodb": _dynamodb,
    "dynamodbstreams": _dynamodb_streams,
    "s3": _s3,
    "sqs": _sqs,
    "secretsmanager": _secretsmanager,
    "awsevents": _events,
}


# --- answers ------------------------------------------------------------------------------------------


def access_denied(service: str, message: str) -> Response:
    """AccessDenied as each service answers it."""
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(message)}</Message><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
        )
        return Response(body, 403, [("content-type", "application/xml")])
    if service in ("dynamodb", "dynamodbstreams"):
        error = {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException", "message": message}
        return _json(400, error, "application/x-amz-json-1.0")
    if service == "sqs":
        error = {"__type": "com.amazonaws.sqs#AccessDenied", "message": message}
        return _json(403, error, "application/x-amz-json-1.0", [("x-amzn-query-error", "AccessDenied;Sender")])
    return _json(400, {"__type": "AccessDeniedException", "Message": message}, "application/x-amz-json-1.1")


def _json(status: int, body: Any, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(json.dumps(body), status, [("content-type", content_type), *headers])


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
