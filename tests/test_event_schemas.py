"""The published event schemas (schemas/events/) are what the code makes, and every event the code builds
from a stream record satisfies the schema of its detail type."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from core.data.items import attachment_item, serialize, task_item
from core.data.stream_changes import stream_event
from core.domain import clock
from core.domain.events import DETAIL_TYPES, TASK_COMPLETED, TASK_CREATED, TASK_DELETED
from core.domain.models import Attachment, Task
from tests.event_support import SCHEMAS, as_delivered, schema_errors, validator
from tests.task_data import stored_tasks
from tools import event_schemas

instants = st.integers(min_value=0, max_value=253_402_300_799).map(clock.from_epoch)
owners = st.text(min_size=1, max_size=40)


@st.composite
def task_versions(draw: st.DrawFn) -> tuple[Task, Task]:
    """Two successive versions of one task, as the service stores them."""
    first, second = draw(stored_tasks()), draw(stored_tasks())
    owner, version = draw(owners), draw(st.integers(min_value=1, max_value=10**6))
    created, updated = sorted(draw(st.lists(instants, min_size=2, max_size=2)))
    before = Task(**{**first, "userId": owner, "version": version, "createdAt": created, "updatedAt": created})
    after = Task(
        **{
            **second,
            "taskId": before.taskId,
            "userId": owner,
            "version": version + 1,
            "createdAt": created,
            "updatedAt": updated,
            "completedAt": updated if second["status"] == "completed" else None,
        }
    )
    return before, after


def record(
    item: dict[str, Any], *, old: dict[str, Any] | None, new: dict[str, Any] | None, when: int
) -> dict[str, Any]:
    """A stream record as Lambda delivers it (NEW_AND_OLD_IMAGES)."""
    change: dict[str, Any] = {
        "Keys": serialize({"pk": item["pk"], "sk": item["sk"]}),
        "ApproximateCreationDateTime": when,
        "SequenceNumber": "100",
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        change["OldImage"] = serialize(old)
    if new is not None:
        change["NewImage"] = serialize(new)
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    return {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change}


def test_the_committed_schemas_are_what_the_code_makes() -> None:
    assert event_schemas.main(["--check"]) == 0, "run `make event-schemas`"
    assert sorted(path.name for path in SCHEMAS.glob("*.json")) == sorted(map(event_schemas.file_name, DETAIL_TYPES))


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_each_schema_is_a_valid_draft_2020_12_schema(detail_type: str) -> None:
    Draft202012Validator.check_schema(validator(detail_type).schema)


@given(task_versions(), st.integers(min_value=0, max_value=4_000_000_000))
def test_every_task_event_from_the_stream_satisfies_its_schema(versions: tuple[Task, Task], when: int) -> None:
    before, after = versions
    old, new = task_item(before), task_item(after)
    changes = [
        record(old, old=None, new=old, when=when),
        record(old, old=old, new=new, when=when),
        record(new, old=new, new=None, when=when),
    ]

    events = [stream_event(change) for change in changes]

    assert [event.detail_type if event else None for event in events][::2] == [TASK_CREATED, TASK_DELETED]
    for event in events:
        assert event is not None
        delivered = as_delivered(event.detail_type, event.detail)
        assert schema_errors(delivered) == [], delivered


@given(owners, instants, st.integers(min_value=0, max_value=4_000_000_000))
def test_every_attachment_event_from_the_stream_satisfies_its_schema(owner: str, created: str, when: int) -> None:
    pending = Attachment(
        attachmentId="01J0000000000000000000000A",
        taskId="01J0000000000000000000000T",
        userId=owner,
        fileName="notes.txt",
        contentType="text/plain",
        size=3,
        status="pending",
        createdAt=created,
        key="attachments/x/y",
        uploadExpiresAt=1_900_000_000,
    )
    waiting, landed = attachment_item(pending), attachment_item(Attachment(**{**vars(pending), "status": "available"}))
    changes = [record(waiting, old=waiting, new=landed, when=when), record(landed, old=landed, new=None, when=when)]

    for change in changes:
        event = stream_event(change)
        assert event is not None
        delivered = as_delivered(event.detail_type, event.detail)
        assert schema_errors(delivered) == [], delivered


GOOD = {
    "eventId": "T1:2",
    "owner": "alice",
    "taskId": "T1",
    "version": 2,
    "occurredAt": "2026-12-03T10:00:00.000000Z",
    "changedFields": ["status"],
    "task": {
        "taskId": "T1",
        "userId": "alice",
        "title": "t",
        "description": "",
        "status": "completed",
        "priority": "medium",
        "dueDate": None,
        "tags": [],
        "createdAt": "2026-12-03T09:00:00.000000Z",
        "updatedAt": "2026-12-03T10:00:00.000000Z",
        "completedAt": "2026-12-03T10:00:00.000000Z",
        "version": 2,
    },
}


@pytest.mark.parametrize(
    "broken",
    [
        {**GOOD, "secret": "x"},
        {key: value for key, value in GOOD.items() if key != "owner"},
        {**GOOD, "task": {**GOOD["task"], "status": "pending"}},
        {**GOOD, "changedFields": ["contents"]},
        {**GOOD, "eventId": "T1"},
        {**GOOD, "occurredAt": "yesterday"},
    ],
)
def test_the_schemas_refuse_what_the_contract_does_not_allow(broken: dict[str, Any]) -> None:
    assert schema_errors(as_delivered(TASK_COMPLETED, GOOD)) == []
    assert schema_errors(as_delivered(TASK_COMPLETED, broken)) != []
