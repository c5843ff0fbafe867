"""Domain events end to end, through `make run`'s stack (tables on moto, then on DynamoDB Local): a scripted
sequence of requests, then every event a consumer of the bus received (an SQS queue behind a rule, as a
deployed consumer would subscribe) is checked against its schema, and each version arrives exactly once
(a duplicate only with the same id and the same content), in version order per task."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.aws import client
from tests.event_support import schema_errors
from tests.local_support import BACKENDS, StackProcess, stack_on

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with stack_on(request.param, tmp_path_factory.mktemp("stack"), table_name="e2e-events") as process:
        yield process


class Consumer:
    """A queue subscribed to every event of the stack's bus."""

    def __init__(self, stack: StackProcess):
        endpoint = stack.info["aws_endpoint"]
        self.sqs, events = client("sqs", endpoint), client("events", endpoint)
        bus = stack.info["resource_names"]["EventBus"]
        name = f"consumer-{uuid.uuid4().hex[:8]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["serverless-tasks"]}))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            seen += [json.loads(message["Body"]) for message in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
        return seen


class Api:
    def __init__(self, stack: StackProcess, user: str):
        self.stack, self.base = stack, stack.info["api_url"]
        self.headers = stack.issuer().bearer(user)

    def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        assert response.status_code == expected, (method, path, response.status_code, response.text)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    def attach(self, task_id: str) -> str:
        body = {"fileName": "a.txt", "contentType": "text/plain", "size": 3}
        grant = self.call("POST", f"/tasks/{task_id}/attachments", 201, json=body)
        form = grant["upload"]
        posted = requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"abc")}, timeout=30)
        assert posted.status_code in (200, 201, 204), posted.text
        self.stack.drain_events()
        return str(grant["attachmentId"])


def test_every_change_is_published_once_per_version_in_order_and_as_its_schema_says(stack: StackProcess) -> None:
    consumer = Consumer(stack)
    alice, bob = Api(stack, f"alice-{uuid.uuid4()}"), Api(stack, f"bob-{uuid.uuid4()}")
    expected: list[tuple[str, str, int]] = []  # (detail type, task id, version), in the order of the requests

    # given a task that goes through its whole life, with two attachments
    key = {"Idempotency-Key": str(uuid.uuid4())}
    task = alice.call("POST", "/tasks", 201, json={"title": "life", "tags": ["a"]}, headers=key)
    alice.call("POST", "/tasks", 201, json={"title": "life", "tags": ["a"]}, headers=key)  # a replay: no event
    tid = task["taskId"]
    expected.append(("Task Created", tid, 1))
    alice.call("PATCH", f"/tasks/{tid}", 200, json={"title": "renamed", "dueDate": "2027-01-31"})
    expected.append(("Task Updated", tid, 2))
    alice.call(
        "PATCH", f"/tasks/{tid}", 412, json={"title": "stale"}, headers={"If-Match": f'"{tid}.1"'}
    )  # stale: no event
    alice.call("PATCH", f"/tasks/{tid}", 200, json={"status": "completed"})
    expected.append(("Task Completed", tid, 3))
    alice.call("PUT", f"/tasks/{tid}", 200, json={"title": "reopened"})
    expected.append(("Task Updated", tid, 4))
    first = alice.attach(tid)
    expected.append(("Attachment Available", tid, 1))
    alice.call("DELETE", f"/tasks/{tid}/attachments/{first}", 204)
    expected.append(("Attachment Deleted", tid, 2))
    second = alice.attach(tid)
    expected.append(("Attachment Available", tid, 1))
    alice.call(
        "POST", f"/tasks/{tid}/attachments", 201, json={"fileName": "b.txt", "contentType": "text/plain", "size": 1}
    )
    alice.call("DELETE", f"/tasks/{tid}", 204)  # its available attachment goes with it; the pending one unannounced
    expected += [("Task Deleted", tid, 5), ("Attachment Deleted", tid, 2)]
    other = bob.call("POST", "/tasks", 201, json={"title": "bob's"})
    expected.append(("Task Created", other["taskId"], 1))

    stack.drain_events()
    received = consumer.received()

    for event in received:
        assert schema_errors(event) == [], event
    by_id: dict[str, tuple[str, dict[str, Any]]] = {}
    for event in received:
        kind_and_detail = (event["detail-type"], event["detail"])
        assert by_id.setdefault(event["detail"]["eventId"], kind_and_detail) == kind_and_detail, "same id, same event"
    arrived = sorted((kind, detail["taskId"], detail["version"]) for kind, detail in by_id.values())
    assert arrived == sorted(expected), "every change once, nothing else"
    assert by_id[f"{tid}:{first}:2"][1]["owner"] == task["userId"]
    assert by_id[f"{other['taskId']}:1"][1]["owner"] == other["userId"]
    assert f"{tid}:{second}:2" in by_id
    versions = [event["detail"]["version"] for event in received if event["detail-type"].startswith("Task")]
    tasks = [event["detail"]["taskId"] for event in received if event["detail-type"].startswith("Task")]
    of_first = [version for version, task_id in zip(versions, tasks, strict=True) if task_id == tid]
    assert of_first == sorted(of_first), "a task's events are published in version order"
