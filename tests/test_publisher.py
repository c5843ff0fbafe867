"""The event publisher's handler: stream batches in, domain events on the bus in order, and the first record
it could not publish reported, so Lambda retries from there."""

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from core.config import PublisherSettings
from core.data.items import attachment_item, serialize, task_item
from core.domain.errors import ConfigurationError
from core.domain.models import Attachment, Task
from core.wiring import build_event_publisher
from publisher.handler import create_handler
from tests.support import lambda_context

WHEN = "2026-12-03T10:00:00.000000Z"


class Bus:
    """An EventBridge client whose PutEvents keeps what it accepts and refuses the event ids in `refused`."""

    def __init__(self) -> None:
        self.client = boto3.client("events", region_name="us-east-1")
        self.accepted: list[str] = []
        self.refused: set[str] = set()
        self.client.meta.events.register("before-call.events.PutEvents", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        results = []
        for entry in json.loads(params["body"])["Entries"]:
            event_id = json.loads(entry["Detail"])["eventId"]
            if event_id in self.refused:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.accepted.append(event_id)
                results.append({"EventId": "x"})
        failed = sum("ErrorCode" in result for result in results)
        return SimpleNamespace(status_code=200), {"FailedEntryCount": failed, "Entries": results}


def task(version: int, **fields: Any) -> Task:
    values = {
        "taskId": "01J0000000000000000000000T",
        "userId": "alice",
        "title": "t",
        "createdAt": WHEN,
        "updatedAt": WHEN,
    }
    return Task(**{**values, "version": version, **fields})


def record(sequence: int, old: Any = None, new: Any = None) -> dict[str, Any]:
    item = old or new
    change: dict[str, Any] = {
        "Keys": serialize({"pk": item["pk"], "sk": item["sk"]}),
        "SequenceNumber": str(sequence),
        "ApproximateCreationDateTime": 1_796_300_000,
    }
    if old:
        change["OldImage"] = serialize(old)
    if new:
        change["NewImage"] = serialize(new)
    return {"eventSource": "aws:dynamodb", "dynamodb": change}


def lifecycle() -> list[dict[str, Any]]:
    """A task's life: created, updated, touched without a new version, completed, deleted; plus other items."""
    v1, v2, v3 = task_item(task(1)), task_item(task(2, title="u")), task_item(task(3, title="u", status="completed"))
    counted = {**v2, "attachmentCount": 1}
    idempotency = {"pk": "IDEMPOTENCY#alice#k", "sk": "IDEMPOTENCY", "status": "done"}
    pending = Attachment(
        "01J0000000000000000000000A",
        "01J0000000000000000000000T",
        "alice",
        "a.txt",
        "text/plain",
        3,
        "pending",
        WHEN,
        "k",
        1,
    )
    waiting, landed = attachment_item(pending), attachment_item(Attachment(**{**vars(pending), "status": "available"}))
    return [
        record(1, new=v1),
        record(2, old=v1, new=v2),
        record(3, new=idempotency),
        record(4, old=v2, new=counted),
        record(5, new=waiting),
        record(6, old=waiting, new=landed),
        record(7, old=counted, new=v3),
        record(8, old=v3),
    ]


def handle(bus: Bus, records: list[dict[str, Any]]) -> dict[str, Any]:
    settings = PublisherSettings("table", "bucket", event_bus_name="bus")
    handler = create_handler(build_event_publisher(settings, bus.client))
    return handler({"Records": records}, lambda_context("EventPublisherFunction"))


def test_a_batch_is_published_in_order_one_event_per_change() -> None:
    bus = Bus()

    result = handle(bus, lifecycle())

    assert result == {"batchItemFailures": []}
    assert bus.accepted == [
        "01J0000000000000000000000T:1",
        "01J0000000000000000000000T:2",
        "01J0000000000000000000000T:01J0000000000000000000000A:1",
        "01J0000000000000000000000T:3",
        "01J0000000000000000000000T:4",
    ]


def test_the_first_record_not_published_is_reported_and_a_retry_from_it_sends_the_same_ids() -> None:
    bus = Bus()
    bus.refused = {"01J0000000000000000000000T:01J0000000000000000000000A:1"}

    result = handle(bus, lifecycle())

    assert result == {"batchItemFailures": [{"itemIdentifier": "6"}]}  # the attachment's record
    assert bus.accepted[:2] == ["01J0000000000000000000000T:1", "01J0000000000000000000000T:2"]
    bus.refused = set()
    assert handle(bus, lifecycle()[5:]) == {"batchItemFailures": []}
    assert set(bus.accepted) == {
        "01J0000000000000000000000T:1",
        "01J0000000000000000000000T:2",
        "01J0000000000000000000000T:01J0000000000000000000000A:1",
        "01J0000000000000000000000T:3",
        "01J0000000000000000000000T:4",
    }


def test_an_unreadable_record_is_reported_after_what_came_before_is_published() -> None:
    bus = Bus()
    records = lifecycle()
    del records[3]["dynamodb"]["Keys"]

    result = handle(bus, records)

    assert result == {"batchItemFailures": [{"itemIdentifier": "4"}]}
    assert bus.accepted == ["01J0000000000000000000000T:1", "01J0000000000000000000000T:2"]


def test_the_publisher_needs_its_bus_name() -> None:
    with pytest.raises(ConfigurationError, match="EVENT_BUS_NAME"):
        PublisherSettings.from_environment({"TABLE_NAME": "t", "BUCKET_NAME": "b"})
