"""Domain events: built from a change's before and after states (core.domain.events), put on the bus
(core.data.event_bus)."""

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from core.data.event_bus import MAX_ENTRIES, MAX_REQUEST_BYTES, PUT_ATTEMPTS, EventBus, entry, entry_size
from core.domain.errors import EventsNotPublished, ServiceUnavailable
from core.domain.events import (
    ATTACHMENT_AVAILABLE,
    ATTACHMENT_DELETED,
    SOURCE,
    TASK_COMPLETED,
    TASK_CREATED,
    TASK_DELETED,
    TASK_UPDATED,
    DomainEvent,
    attachment_event,
    task_event,
)
from core.domain.models import PUBLIC_FIELDS, Task
from local.aws import MotoServer
from local.template import Template
from tests.support import function_client
from tests.task_data import stored_tasks

WHEN = "2026-12-03T10:00:00.000000Z"
public_tasks = stored_tasks().map(lambda values: Task(**values).to_json())


@given(public_tasks)
def test_a_created_task_is_announced_with_its_state_and_every_field(task: dict[str, Any]) -> None:
    event = task_event(None, task, WHEN)

    assert event is not None
    assert event.detail_type == TASK_CREATED
    assert event.detail["eventId"] == f"{task['taskId']}:{task['version']}"
    assert event.detail["task"] == task
    assert event.detail["changedFields"] == sorted(row.name for row in PUBLIC_FIELDS)
    assert event.detail["occurredAt"] == task["updatedAt"]
    assert event.detail["owner"] == task["userId"]


@given(public_tasks, public_tasks)
def test_an_update_names_exactly_the_fields_that_changed(before: dict[str, Any], changes: dict[str, Any]) -> None:
    after = {**changes, "taskId": before["taskId"], "userId": before["userId"], "version": before["version"] + 1}

    event = task_event(before, after, WHEN)

    assert event is not None
    completed = after["status"] == "completed" and before["status"] != "completed"
    assert event.detail_type == (TASK_COMPLETED if completed else TASK_UPDATED)
    assert event.event_id == f"{before['taskId']}:{before['version'] + 1}"
    assert event.detail["task"] == after
    changed = {name for name in after if after[name] != before[name]} - {"version", "updatedAt"}
    assert event.detail["changedFields"] == sorted(changed)


@given(public_tasks)
def test_a_deletion_comes_after_the_last_version_and_carries_no_state(task: dict[str, Any]) -> None:
    event = task_event(task, None, WHEN)

    assert event is not None
    assert event.detail_type == TASK_DELETED
    assert event.detail["version"] == task["version"] + 1
    assert event.detail["task"] is None
    assert event.detail["occurredAt"] == max(WHEN, task["updatedAt"])  # never before the last write


@given(public_tasks)
def test_a_write_that_keeps_the_version_announces_nothing(task: dict[str, Any]) -> None:
    assert task_event(task, dict(task), WHEN) is None
    assert task_event(None, None, WHEN) is None


ATTACHMENT = {
    "attachmentId": "01J0000000000000000000000A",
    "taskId": "01J0000000000000000000000T",
    "fileName": "a.txt",
    "contentType": "text/plain",
    "size": 3,
    "status": "pending",
    "createdAt": WHEN,
}
AVAILABLE = {**ATTACHMENT, "status": "available"}


def test_an_attachment_is_announced_when_its_upload_lands_and_when_it_goes() -> None:
    landed = attachment_event("alice", ATTACHMENT, AVAILABLE, WHEN)
    gone = attachment_event("alice", AVAILABLE, None, WHEN)

    assert landed is not None and gone is not None
    assert (landed.detail_type, landed.detail["version"], landed.detail["attachment"]) == (
        ATTACHMENT_AVAILABLE,
        1,
        AVAILABLE,
    )
    assert (gone.detail_type, gone.detail["version"]) == (ATTACHMENT_DELETED, 2)
    assert landed.event_id != gone.event_id
    assert landed.detail["owner"] == gone.detail["owner"] == "alice"


def test_pending_attachments_are_not_announced() -> None:
    assert attachment_event("alice", None, ATTACHMENT, WHEN) is None
    assert attachment_event("alice", ATTACHMENT, None, WHEN) is None
    assert attachment_event("alice", AVAILABLE, AVAILABLE, WHEN) is None


def _event(n: int, description: str = "") -> DomainEvent:
    return DomainEvent(TASK_UPDATED, {"eventId": f"t:{n}", "n": n, "description": description})


PUBLISHER = "EventPublisherFunction"
BUS_NAME = str(Template.load().properties("EventBus", "AWS::Events::EventBus")["Name"])  # as the stand-in's roles


@pytest.fixture
def bus_messages(aws: None, aws_stand_in: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The template's bus on the AWS stand-in, with a rule sending every event of SOURCE to a queue; returns a
    reader of that queue."""
    for service in ("EVENTBRIDGE", "SQS"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", aws_stand_in.url)
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS_NAME)
    queue = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName=BUS_NAME, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="all", EventBusName=BUS_NAME, Targets=[{"Id": "q", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            seen.extend(json.loads(message["Body"]) for message in messages)
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return seen

    return read


def test_published_events_reach_the_bus_with_their_source_type_and_detail(bus_messages: Any) -> None:
    events = [_event(n) for n in range(23)]

    EventBus(function_client("events", PUBLISHER), BUS_NAME).publish(events)  # with the publisher's role

    seen = bus_messages()
    assert sorted((e["source"], e["detail-type"], e["detail"]["n"]) for e in seen) == [
        (SOURCE, TASK_UPDATED, n) for n in range(23)
    ]


def test_the_publishers_role_puts_events_on_its_bus_only(bus_messages: Any) -> None:
    boto3.client("events").create_event_bus(Name="another-bus")

    with pytest.raises(ClientError) as denied:  # not a ServiceUnavailable: a bug, the invocation fails
        EventBus(function_client("events", PUBLISHER), "another-bus").publish([_event(1)])

    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


@given(st.lists(st.integers(min_value=0, max_value=60_000), max_size=40))
def test_calls_keep_to_eventbridges_limits_and_keep_the_order(sizes: list[int]) -> None:
    events = [_event(n, "é" * size) for n, size in enumerate(sizes)]
    client = boto3.client("events", region_name="us-east-1")
    calls: list[list[dict[str, Any]]] = []

    def accept(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        entries = json.loads(params["body"])["Entries"]
        calls.append(entries)
        return SimpleNamespace(status_code=200), {"FailedEntryCount": 0, "Entries": [OK] * len(entries)}

    client.meta.events.register("before-call.events.PutEvents", accept)
    EventBus(client, "bus").publish(events)

    assert [json.loads(item["Detail"])["n"] for call in calls for item in call] == list(range(len(events)))
    for call in calls:
        assert len(call) <= MAX_ENTRIES
        assert sum(entry_size(item) for item in call) <= MAX_REQUEST_BYTES


def _refusing(entries_results: list[list[dict[str, str]]]) -> tuple[Any, Stubber]:
    client = boto3.client("events", region_name="us-east-1")
    stub = Stubber(client)
    for results in entries_results:
        failed = sum("ErrorCode" in result for result in results)
        stub.add_response("put_events", {"FailedEntryCount": failed, "Entries": results})
    return client, stub


OK = {"EventId": "x"}
REFUSED = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}


def test_refused_entries_are_sent_again_and_only_they() -> None:
    client, stub = _refusing([[OK, REFUSED, OK], [OK]])
    sent: list[list[str]] = []
    client.meta.events.register(
        "before-parameter-build.events.PutEvents",
        lambda params, **_: sent.append([json.loads(item["Detail"])["eventId"] for item in params["Entries"]]),
    )
    with stub:
        EventBus(client, "bus").publish([_event(0), _event(1), _event(2)])

    assert sent == [["t:0", "t:1", "t:2"], ["t:1"]]


def test_entries_still_refused_after_the_attempts_raise_naming_what_got_through() -> None:
    client, stub = _refusing([[OK] * 10] + [[OK, OK, REFUSED]] + [[REFUSED]] * (PUT_ATTEMPTS - 1))
    with stub, pytest.raises(EventsNotPublished) as raised:
        EventBus(client, "bus").publish([_event(n) for n in range(13)])

    assert raised.value.published == 12
    assert isinstance(raised.value, ServiceUnavailable)


def test_a_throttled_call_raises_naming_what_got_through() -> None:
    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [OK] * 10})
        stub.add_client_error("put_events", "ThrottlingException", http_status_code=400)
        with pytest.raises(EventsNotPublished) as raised:
            EventBus(client, "bus").publish([_event(n) for n in range(15)])

    assert raised.value.published == 10


def test_an_entry_is_what_the_contract_says() -> None:
    item = entry(_event(7, "ü"), "the-bus")

    assert (item["Source"], item["DetailType"], item["EventBusName"]) == (SOURCE, TASK_UPDATED, "the-bus")
    assert json.loads(item["Detail"]) == {"eventId": "t:7", "n": 7, "description": "ü"}


def test_a_delete_by_request_is_announced_once_when_the_record_turns_deleting() -> None:
    # The exact-limit delete uncounts the record first (available -> deleting), then removes it.
    deleting = {**AVAILABLE, "status": "deleting"}

    uncounted = attachment_event("alice", AVAILABLE, deleting, WHEN)
    removed = attachment_event("alice", deleting, None, WHEN)
    never_available = attachment_event("alice", ATTACHMENT, {**ATTACHMENT, "status": "deleting"}, WHEN)

    assert uncounted is not None and (uncounted.detail_type, uncounted.detail["version"]) == (ATTACHMENT_DELETED, 2)
    assert removed is None and never_available is None
