"""The embedded AWS stand-in: a moto server on loopback, and the template's tables and buckets in it."""

import http.client
import io
import json
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_api._internal import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Request

from local import LOCAL_REGION
from local.events import Response
from local.server import HttpServer
from local.template import Template, require_resolved, truthy

_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "StreamSpecification")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
_CORS_RULE = {  # put_bucket_cors key: CloudFormation key
    "ID": "Id",
    "AllowedHeaders": "AllowedHeaders",
    "AllowedMethods": "AllowedMethods",
    "AllowedOrigins": "AllowedOrigins",
    "ExposeHeaders": "ExposedHeaders",
    "MaxAgeSeconds": "MaxAge",
}

DEFAULT_AWS_PORT = 5000
LOCAL_ACCESS_KEY_ID = "local"
LOCAL_SECRET_ACCESS_KEY = "local"  # noqa: S105 - moto's stand-in credentials, not a secret


def client(service: str, endpoint: str, *, access_key_id: str = LOCAL_ACCESS_KEY_ID) -> Any:
    """A boto3 client for a local endpoint, with few retries: the stand-in's own credentials, or a function's
    (`local.roles.access_key_id`), which the stand-in authorizes with that function's role."""
    session = boto3.session.Session(access_key_id, LOCAL_SECRET_ACCESS_KEY, region_name=LOCAL_REGION)
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=2,
        read_timeout=30,
        signature_version="s3v4" if service == "s3" else None,  # as the app signs (POST policies: SigV4 only)
    )
    return session.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


class MotoServer:
    """moto's server app (the one `moto_server` runs) in this process, on a port bound at construction.

    `gates` may answer a request instead of moto (a presigned POST that breaks its policy); `observers`
    see each request and moto's response before it is sent, and may change its headers (uploads that S3
    would announce to EventBridge, the bucket's CORS rules).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_AWS_PORT):
        self.gates: list[Callable[[Request], Response | None]] = []
        self.observers: list[Callable[[Request, Response], None]] = []
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = HttpServer(self.serve, host, port, name="AWS stand-in (moto)")

    def serve(self, request: Request) -> Response:
        body = request.get_data()  # read for the gates and observers, then again by moto:
        request.environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        refused = next((response for gate in self.gates if (response := gate(request)) is not None), None)
        if refused is not None:
            return refused
        response = Response.from_app(self._moto, request.environ, buffered=True)
        for observer in self.observers:
            observer(request, response)
        return response

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> "MotoServer":
        """Serve, empty: moto keeps its resources for the whole process, so what an earlier stand-in of this
        process made (an event bus, a queue) is forgotten first."""
        moto_api_backend.reset()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving, forgetting every table, bucket and item (moto keeps them for the whole process)."""
        self._server.stop()
        moto_api_backend.reset()


class GatedProxy:
    """Another AWS endpoint (DynamoDB Local) behind the same gates: a request they let through is forwarded."""

    def __init__(self, upstream: str, gates: list[Callable[[Request], Response | None]]):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.gates = gates

    def __call__(self, request: Request) -> Response:
        body = request.get_data()
        refused = next((response for gate in self.gates if (response := gate(request)) is not None), None)
        if refused is not None:
            return refused
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {name: value for name, value in request.headers.items() if name.lower() != "host"}
            connection.request(request.method, request.full_path.rstrip("?"), body=body, headers=headers)
            answer = connection.getresponse()
            hop = {"transfer-encoding", "connection", "keep-alive"}
            kept = [(name, value) for name, value in answer.getheaders() if name.lower() not in hop]
            return Response(answer.read(), answer.status, kept)
        except OSError as error:  # the upstream is down: the service's own "retry later" error
            fault = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": str(error)}
            return Response(json.dumps(fault), 500, [("content-type", "application/x-amz-json-1.0")])
        finally:
            connection.close()


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on host:port (a port only in TIME_WAIT is free, as for our own servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


# --- resources from the template ----------------------------------------------------------------------


def table_definition(
    logical_id: str | None = None, *, table_name: str | None = None, template: Template | None = None
) -> dict[str, Any]:
    """Keyword arguments for boto3 `create_table` from a table of the template (the only one by default).

    Properties `create_table` does not take (TTL, PITR, SSE, deletion protection, ...) are left out.
    """
    template = template or Template.load()
    name = template.only("AWS::DynamoDB::Table", logical_id)
    properties = template.properties(name, "AWS::DynamoDB::Table")
    definition: dict[str, Any] = {key: properties[key] for key in _TABLE_KEYS if key in properties}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if properties.get(key):
            definition[key] = [{k: index[k] for k in _INDEX_KEYS if k in index} for index in properties[key]]
    if definition.setdefault("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
        for throughput in [definition, *definition.get("GlobalSecondaryIndexes", [])]:
            throughput.pop("ProvisionedThroughput", None)
    for throughput in [definition, *definition.get("GlobalSecondaryIndexes", [])]:
        if "ProvisionedThroughput" in throughput:
            throughput["ProvisionedThroughput"] = {k: int(v) for k, v in throughput["ProvisionedThroughput"].items()}
    if "StreamSpecification" in definition:  # CloudFormation's StreamViewType alone means the stream is on
        definition["StreamSpecification"] = {"StreamEnabled": True, **definition["StreamSpecification"]}
    require_resolved(definition, f"table {name}")
    return definition if table_name is None else {"TableName": table_name, **definition}


def create_table(
    dynamodb: Any, template: Template, table_name: str, logical_id: str | None = None, *, wait_seconds: float = 60
) -> None:
    """Create a table of the template as `table_name` unless it exists, with its time to live."""
    try:
        dynamodb.create_table(**table_definition(logical_id, table_name=table_name, template=template))
        created = True
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        created = False
    deadline = time.monotonic() + wait_seconds
    while dynamodb.describe_table(TableName=table_name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table_name} is not ACTIVE after {wait_seconds} s")
        time.sleep(0.1)
    name = template.only("AWS::DynamoDB::Table", logical_id)
    ttl = template.properties(name, "AWS::DynamoDB::Table").get("TimeToLiveSpecification")
    if created and ttl and ttl.get("AttributeName"):
        spec = {"AttributeName": ttl["AttributeName"], "Enabled": truthy(ttl.get("Enabled", True))}
        try:
            dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=spec)
        except ClientError as exc:  # an emulator without TTL support still serves the table
            logging.getLogger(__name__).warning("TTL not set on %s: %s", table_name, exc)


def create_bucket(s3: Any, template: Template, bucket_name: str, logical_id: str | None = None) -> None:
    """Create a bucket of the template as `bucket_name`: versioning, CORS, AES256 encryption, public access block."""
    properties = template.properties(template.only("AWS::S3::Bucket", logical_id), "AWS::S3::Bucket")
    try:
        s3.create_bucket(Bucket=bucket_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    if (properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    rules = bucket_cors_rules(template, logical_id)
    if rules:
        s3.put_bucket_cors(Bucket=bucket_name, CORSConfiguration={"CORSRules": rules})
    encryption = (properties.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
    if any((rule.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") == "AES256" for rule in encryption):
        aes = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}  # KMS: AWS's business
        s3.put_bucket_encryption(Bucket=bucket_name, ServerSideEncryptionConfiguration=aes)
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        configuration = {key: truthy(value) for key, value in block.items()}
        s3.put_public_access_block(Bucket=bucket_name, PublicAccessBlockConfiguration=configuration)


def bucket_cors_rules(template: Template, logical_id: str | None = None) -> list[dict[str, Any]]:
    """The bucket's CorsConfiguration as boto3's `put_bucket_cors` takes it."""
    properties = template.properties(template.only("AWS::S3::Bucket", logical_id), "AWS::S3::Bucket")
    rules = []
    for rule in (properties.get("CorsConfiguration") or {}).get("CorsRules") or []:
        converted = {key: rule[name] for key, name in _CORS_RULE.items() if rule.get(name) is not None}
        rules.append({**converted, "MaxAgeSeconds": int(rule["MaxAge"])} if "MaxAge" in rule else converted)
    require_resolved(rules, f"the CORS rules of bucket {logical_id}")
    return rules


def sends_events(template: Template, logical_id: str) -> bool:
    """Whether the bucket sends its events to EventBridge (NotificationConfiguration.EventBridgeConfiguration)."""
    notifications = template.properties(logical_id, "AWS::S3::Bucket").get("NotificationConfiguration") or {}
    return truthy((notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled", False))


def local_aws_environment(*, dynamodb_endpoint: str, s3_endpoint: str) -> dict[str, str | None]:
    """The environment boto3 needs to talk to the local endpoints and never to a real account (None: unset)."""
    unset = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": s3_endpoint,  # the stand-in that serves S3 serves the event bus too
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **dict.fromkeys(unset),
    }
