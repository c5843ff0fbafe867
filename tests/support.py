"""Helpers for the handler and app tests: plain functions and classes (the fixtures are in conftest.py).

- `Backend`: the CRUD function's settings and AWS clients for one test; `backend.invoke("get-task", ...)`
  calls the real handler, built through `core.wiring.build_services`, with an event from events/;
- `make_event(...)`: an events/ file changed only where the test says; `HttpResponse`: what came back.
"""

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from awslambdaric.lambda_context import LambdaContext

from core.config import AttachmentLimits, CrudSettings, ExportSettings
from core.http.bodies import TaskFields
from core.wiring import AWS_CLIENT_CONFIG, S3_CLIENT_CONFIG, Services, build_services
from local.aws import LOCAL_SECRET_ACCESS_KEY, table_definition
from local.roles import access_key_id
from local.template import Template
from rotation.handler import rotate

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TABLE = "tasks-test"
BUCKET = "tasks-test-attachments"
ISSUER = "https://issuer.test"
AUDIENCE = "tasks-test-audience"
CURSOR_SECRET = "test-cursor-secret-0123456789abcdef0123456789"
TEST_ACCESS_KEY_ID = "testing"  # the tests' own key: the AWS stand-in lets it do anything
CRUD_FUNCTION = "TasksFunction"
ALICE = "alice-sub"
BOB = "bob-sub"
REQUEST_ID = "test-request-0001"

_TEMPLATE = Template.load()
_TEMPLATE_PARAMETERS = _TEMPLATE.parameters  # the attachment limits are the template's defaults
CURSOR_SECRET_NAME = _TEMPLATE.properties("CursorSecret", "AWS::SecretsManager::Secret")["Name"]  # the role names it
ENVIRONMENT = {  # what the template gives the functions, with test values: read by the functions' own readers
    "TABLE_NAME": TABLE,
    "BUCKET_NAME": BUCKET,
    "JWT_ISSUER": ISSUER,
    "JWT_AUDIENCE": AUDIENCE,
    "CURSOR_SECRET": CURSOR_SECRET,
    "ATTACHMENT_MAX_BYTES": _TEMPLATE_PARAMETERS["AttachmentMaxBytes"],
    "ATTACHMENT_MAX_COUNT": _TEMPLATE_PARAMETERS["AttachmentMaxCount"],
    "ATTACHMENT_CONTENT_TYPES": _TEMPLATE_PARAMETERS["AttachmentContentTypes"],
    "EXPORT_MAX_BYTES": "150000000",
    "EXPORT_TIMEOUT_SECONDS": "300",
    "EXPORT_SAFETY_SECONDS": "25",
}


def crud_settings(jwks_url: str, **changes: Any) -> CrudSettings:
    return replace(CrudSettings.from_environment({**ENVIRONMENT, "JWKS_URL": jwks_url}), **changes)


def export_settings(jwks_url: str, **changes: Any) -> ExportSettings:
    return replace(ExportSettings.from_environment({**ENVIRONMENT, "JWKS_URL": jwks_url}), **changes)


ATTACHMENT_LIMITS: AttachmentLimits = crud_settings("").attachments


def lambda_context(
    function_name: str = "TasksFunction",
    timeout_seconds: float = 10,
    *,
    memory_mb: int = 512,
    request_id: str = REQUEST_ID,
) -> LambdaContext:
    """The `context` the Lambda Python runtime (awslambdaric) passes, with what it reads from the environment."""
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    context = LambdaContext(request_id, None, None, int((time.time() + timeout_seconds) * 1000), arn)
    context.function_name = function_name
    context.function_version = "$LATEST"
    context.memory_limit_in_mb = str(memory_mb)
    return context


def create_table(client: Any, name: str) -> None:
    definition = dict(table_definition())
    definition["TableName"] = name
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=name)


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


class HttpResponse:
    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        body = raw.get("body") or ""
        self.text = base64.b64decode(body).decode() if raw.get("isBase64Encoded") else body

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]}>"


Invoke = Callable[..., HttpResponse]


@dataclass
class Backend:
    """What the CRUD function runs with in one test. Change a field and the next call uses it."""

    settings: CrudSettings
    dynamodb: Any = field(default_factory=lambda: function_client("dynamodb", CRUD_FUNCTION))
    s3: Any = field(default_factory=lambda: function_client("s3", CRUD_FUNCTION))
    others: dict[str, "Backend"] = field(default_factory=dict, repr=False)

    def function(self, name: str) -> "Backend":
        """The same backend with the clients of another function (its credentials: its role applies)."""
        if name == CRUD_FUNCTION:
            return self
        if name not in self.others:
            clients = {"dynamodb": function_client("dynamodb", name), "s3": function_client("s3", name)}
            self.others[name] = replace(self, **clients, others={})
        return self.others[name]

    def services(self) -> Services:
        return build_services(self.settings, self.dynamodb, lambda: self.s3)

    def call(self, event: dict[str, Any]) -> HttpResponse:
        """The CRUD function's answer to a whole event (for tests that shape the event themselves)."""
        from tasks.app import create_handler, environment

        handler = create_handler(environment(self.settings, self.dynamodb, lambda: self.s3))
        return HttpResponse(handler(event, lambda_context()))

    def invoke(self, name: str, **changes: Any) -> HttpResponse:
        return self.call(make_event(name, **changes))

    def load_tasks(self, owner: str, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Tasks made by the real service (validated as a POST would be), written in batches; their ids."""
        fields = (TaskFields(**{"title": f"task {n}", **spec}).values() for n, spec in enumerate(specs))
        return [task.taskId for task in self.services().tasks.import_tasks(owner, fields)]


def function_client(service: str, function: str) -> Any:
    """A client made as the function makes its own (core.wiring's configuration, the endpoint from the
    environment), with the function's credentials, which the AWS stand-in authorizes with its role."""
    session = boto3.session.Session(access_key_id(function), LOCAL_SECRET_ACCESS_KEY, region_name="us-east-1")
    return session.client(service, config=S3_CLIENT_CONFIG if service == "s3" else AWS_CLIENT_CONFIG)


def make_event(
    name: str,
    *,
    user: str | None = ALICE,
    task_id: str | None = None,
    attachment_id: str | None = None,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    drop_headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An event from events/, changed only where the test says."""
    event = copy.deepcopy(load_event(name))
    if user is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = user
    params = event.get("pathParameters") or {}
    if task_id is not None:
        params["taskId"] = task_id
    if attachment_id is not None:
        params["attachmentId"] = attachment_id
    if params:
        path = "/tasks/" + params["taskId"]
        if event["rawPath"].count("/") >= 3:
            path += "/attachments"
        if "attachmentId" in params:
            path += "/" + params["attachmentId"]
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if body is not None:
        raw_body = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
        event["isBase64Encoded"] = False
    if query is not None:
        event["queryStringParameters"] = query or None
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    for header in drop_headers:
        event["headers"].pop(header, None)
    event["headers"].update(headers or {})
    return event


def race(writers: int, write: Callable[[int], None]) -> None:
    """Run `write(0..writers-1)` on as many threads, released together by a barrier."""
    barrier = threading.Barrier(writers)

    def run(n: int) -> None:
        barrier.wait()
        write(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


STEP_ORDER = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotatingSecret:
    """A secret with rotation turned on. Secrets Manager labels a rotation's token AWSPENDING before it
    calls the function; moto does not, so `start` records that label the way the service reports it."""

    def __init__(self, client: Any = None, *, name: str = "cursor-key", rotator: Any = None) -> None:
        """`client` (default: from the environment) creates the secret; `rotator` (default: `client`) runs
        the steps, as the rotation function does."""
        self.client = client or boto3.client("secretsmanager")
        self.rotator = rotator or self.client
        self.arn = self.client.create_secret(Name=name, SecretString="initial-key-" * 4)["ARN"]
        self.client.rotate_secret(
            SecretId=self.arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False
        )
        self.pending: set[str] = set()
        self.client.meta.events.register("after-call.secrets-manager.DescribeSecret", self._label_pending)

    def _label_pending(self, parsed: dict[str, Any], **_: Any) -> None:
        stages = parsed.setdefault("VersionIdsToStages", {})
        for token in self.pending:
            labels = stages.setdefault(token, [])
            if "AWSCURRENT" not in labels and "AWSPENDING" not in labels:
                labels.append("AWSPENDING")

    def start(self) -> str:
        token = str(uuid.uuid4())
        self.pending.add(token)
        return token

    def step(self, token: str, step: str, client: Any = None) -> None:
        """One step of the rotation function, by default with the rotator's client."""
        client = client or self.rotator
        client.meta.events.register(
            "after-call.secrets-manager.DescribeSecret", self._label_pending, unique_id=f"pending-{id(self)}"
        )
        rotate(client, {"SecretId": self.arn, "ClientRequestToken": token, "Step": step})

    def rotate_fully(self, client: Any = None) -> str:
        token = self.start()
        for step in STEP_ORDER:
            self.step(token, step, client)
        self.pending.discard(token)
        return token

    def value(self, stage: str) -> str:
        return self.client.get_secret_value(SecretId=self.arn, VersionStage=stage)["SecretString"]
