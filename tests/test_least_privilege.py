"""Least privilege, the other way round: no role grants what neither its code nor its event sources use.

How it works. The AWS stand-in authorizes every request of a function with its role and records each
one it allowed (function, action, resource, condition keys: local/iam_gate.py). This module runs one
fixed flow that takes every code path that reaches AWS: the HTTP API, the function URL and the export
through `make run`'s stack (each route; each listing index; an attachment uploaded, downloaded and
deleted; one arriving after its record was deleted; a task deleted with its files by the request and one
deleted behind the function's back, which the clean-up function finishes from the table's stream), then
the cursor key read by the two functions that sign cursors and a full rotation, on a stand-in of their
own. Each statement of each role, one action and one resource at a time, must allow one of the recorded
uses of that function or one of the needs of its event sources (local/roles.py `event_source_needs`);
otherwise it grants what nothing uses. The flow is the same on every run and in this module only, so the
result depends neither on which other tests ran nor on their order. (tests/test_roles.py checks the other
direction for event sources; the end-to-end suites fail on any grant that code lacks.)
"""

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from core.cursor_keys import SecretsManagerKeys
from local import aws
from local.aws import MotoServer
from local.iam import Decision, as_list, evaluate, statements
from local.iam_gate import USAGE_PATH, IamGate, Use
from local.roles import Role, access_key_id, event_source_needs, expanded, roles
from local.template import Template
from tests.local_support import StackProcess, stack_on
from tests.support import RotatingSecret

pytestmark = pytest.mark.e2e

USER = "least-privilege-user"


class Api:
    def __init__(self, stack: StackProcess, base: str):
        self.stack, self.base = stack, base
        self.headers = stack.issuer().bearer(USER)

    def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        response = requests.request(method, self.base + path, headers=self.headers, timeout=30, **kwargs)
        assert response.status_code == expected, (method, path, response.status_code, response.text)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    def task(self, **fields: Any) -> str:
        return str(self.call("POST", "/tasks", 201, json={"title": "least privilege", **fields})["taskId"])

    def attachment(self, task: str, *, upload: bool = True) -> dict[str, Any]:
        body = {"fileName": "a.txt", "contentType": "text/plain", "size": 3}
        grant: dict[str, Any] = self.call("POST", f"/tasks/{task}/attachments", 201, json=body)
        if upload:
            self.upload(grant)
        return grant

    def upload(self, grant: dict[str, Any]) -> None:
        form = grant["upload"]
        posted = requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"abc")}, timeout=30)
        assert posted.status_code in (200, 201, 204), posted.text
        self.stack.drain_events()


def stack_flow(stack: StackProcess) -> None:
    """Every path of the HTTP functions and the clean-up function that reaches AWS."""
    api, url = Api(stack, stack.info["api_url"]), Api(stack, stack.info["function_url"])
    task = api.task(dueDate="2027-01-31", status="in_progress")
    api.call("GET", f"/tasks/{task}", 200)
    api.call("PATCH", f"/tasks/{task}", 200, json={"title": "patched"})
    api.call("PUT", f"/tasks/{task}", 200, json={"title": "replaced", "dueDate": "2027-02-01"})
    url.call("GET", f"/tasks/{task}", 200)
    filters = [
        {},
        {"status": "in_progress"},
        {"sort": "dueDate", "dueBefore": "2028-01-01"},
        {"sort": "dueDate", "status": "pending"},
    ]
    for query in filters:
        api.call("GET", "/tasks", 200, params=query)
        export = requests.get(stack.info["export_url"] + "/tasks/export", headers=api.headers, params=query, timeout=30)
        assert export.status_code == 200, export.text

    grant = api.attachment(task)
    path = f"/tasks/{task}/attachments/{grant['attachmentId']}"
    download = api.call("GET", path, 200)["download"]["url"]
    assert requests.get(download, timeout=30).status_code == 200
    api.call("GET", f"/tasks/{task}/attachments", 200)
    api.call("DELETE", path, 204)
    late = api.attachment(task, upload=False)  # its record goes before its object arrives
    api.call("DELETE", f"/tasks/{task}/attachments/{late['attachmentId']}", 204)
    api.upload(late)
    api.attachment(task)
    api.call("DELETE", f"/tasks/{task}", 204)  # the request deletes the files

    behind = api.task()
    api.attachment(behind)
    dynamodb = aws.client("dynamodb", stack.info["dynamodb_endpoint"])
    key = {"pk": {"S": f"USER#{USER}"}, "sk": {"S": f"TASK#{behind}"}}
    dynamodb.delete_item(TableName=stack.info["table_name"], Key=key)
    stack.drain_events()  # the clean-up function deletes the files from the table's stream


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[Use]]:
    """The stack's resource names, and what its functions were allowed during the flow."""
    with stack_on("moto", tmp_path_factory.mktemp("least-privilege"), table_name="least-privilege") as stack:
        stack_flow(stack)
        recorded = requests.get(stack.info["aws_endpoint"] + USAGE_PATH, timeout=30).json()
        names = dict(stack.info["resource_names"])
    uses = [Use(u["function"], u["action"], u["resource"], tuple(sorted(u["context"].items()))) for u in recorded]
    return names, uses


@pytest.fixture(scope="module")
def template(stack_run: tuple[dict[str, str], list[Use]]) -> Template:
    return Template.load(resource_names=stack_run[0])


@pytest.fixture
def secret_uses(moto_server: MotoServer, template: Template) -> Iterator[list[Use]]:
    """The cursor key read by the functions that sign cursors, and one full rotation."""
    name = str(template.properties("CursorSecret", "AWS::SecretsManager::Secret")["Name"])
    secret = RotatingSecret(aws.client("secretsmanager", moto_server.url), name=name)
    gate = IamGate(roles(template), admin_keys=[aws.LOCAL_ACCESS_KEY_ID])
    moto_server.gates.append(gate)
    for function in ("TasksFunction", "ExportFunction"):
        client = aws.client("secretsmanager", moto_server.url, access_key_id=access_key_id(function))
        keys = list(SecretsManagerKeys(secret.arn, lambda client=client: client).accepted())
        assert keys, function
    secret.rotate_fully(
        aws.client("secretsmanager", moto_server.url, access_key_id=access_key_id("CursorKeyRotationFunction"))
    )
    assert not gate.denied
    yield gate.uses()


def test_every_grant_is_used(
    template: Template, stack_run: tuple[dict[str, str], list[Use]], secret_uses: list[Use]
) -> None:
    needed = [Use(n.function, n.action, n.resource, ()) for n in event_source_needs(expanded(template))]
    uses = [*stack_run[1], *secret_uses, *needed]
    assert {use.function for use in stack_run[1]} >= {"TasksFunction", "ExportFunction", "UploadEventsFunction"}
    unused = []
    for role in roles(template).values():
        for action, resource, statement in grants(role):
            single = {"Version": "2012-10-17", "Statement": [{**statement, "Action": action, "Resource": resource}]}
            if not any(use.function == role.function and allows(single, use) for use in uses):
                unused.append(f"{role.function}: {action} on {resource} ({statement.get('Sid', 'no Sid')})")
    assert not unused, "granted, but no code path and no event source uses it:\n" + "\n".join(unused)


def allows(policy: dict[str, Any], use: Use) -> bool:
    return evaluate(use.action, use.resource, identity=[policy], context=dict(use.context)) is Decision.ALLOWED


def grants(role: Role) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Each (action, resource, statement) of a role's own Allow statements."""
    for document in role.inline:
        for statement in statements(document):
            assert statement["Effect"] == "Allow" and "Action" in statement and "Resource" in statement, statement
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    yield action, resource, statement
