"""Domain events from the table's stream records (typed DynamoDB images, both of them: NEW_AND_OLD_IMAGES).

A record of a task item gives a task event, one of an attachment record an attachment event, any other
item (an idempotency record, say) none. Everything an event says comes from the record, so a record read
twice gives the same event twice.
"""

from collections.abc import Mapping
from typing import Any

from core.data.items import attachment_from_item, deserialize, task_json_from_item
from core.domain import clock
from core.domain.events import DomainEvent, attachment_event, task_event


def stream_event(record: Mapping[str, Any]) -> DomainEvent | None:
    """The domain event of one stream record as Lambda delivers it (None: the change announces nothing)."""
    change = record["dynamodb"]
    keys = change["Keys"]
    pk, sk = keys["pk"]["S"], keys["sk"]["S"]
    if not pk.startswith("USER#"):
        return None
    occurred_at = clock.from_epoch(float(change["ApproximateCreationDateTime"]))
    old, new = change.get("OldImage"), change.get("NewImage")
    if sk.startswith("TASK#"):
        return task_event(_task(old), _task(new), occurred_at)
    if sk.startswith("ATT#"):
        return attachment_event(pk.removeprefix("USER#"), _attachment(old), _attachment(new), occurred_at)
    return None


def _task(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if not image else task_json_from_item(dict(image))


def _attachment(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if not image else attachment_from_item(deserialize(dict(image))).to_json()
