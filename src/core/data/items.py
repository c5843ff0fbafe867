"""How tasks and attachment records are laid out in the one DynamoDB table.

Tasks:       pk=USER#<owner>  sk=TASK#<taskId>
             byStatus:  gsi1pk=USER#<owner>#STATUS#<status>  gsi1sk=TASK#<taskId>
             byDueDate: gsi2pk=USER#<owner>  gsi2sk=<dueAt>#<taskId>  (only tasks with a due date)
Attachments: pk=USER#<owner>  sk=ATT#<taskId>#<attachmentId>
"""

import operator
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from core.domain import clock, ids
from core.domain.errors import NotFound
from core.domain.fields import Stored, TaskField
from core.domain.models import FIELDS_BY_NAME, PUBLIC_FIELDS, TASK_FIELDS, Attachment, Task

PENDING_RECORD_GRACE_SECONDS = 24 * 3600  # DynamoDB TTL removes dead pending records this long after their window

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def user_key(owner: str) -> str:
    return f"USER#{owner}"


def task_key(task_id: str) -> str:
    return f"TASK#{existing_id(task_id)}"


def attachment_prefix(task_id: str) -> str:
    return f"ATT#{existing_id(task_id)}#"


def existing_id(item_id: str) -> str:
    """An id from a request, checked before it goes into a key: one this service cannot have made
    (too long for a DynamoDB key, say) names nothing, so it is a 404 without a round trip."""
    if not ids.is_valid(item_id):
        raise NotFound("not found")
    return item_id


def removed_task(keys: dict[str, Any]) -> tuple[str, str] | None:
    """(owner, task id) of a stream record's typed keys when they are a task item's, else None."""
    pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
    if not (pk.startswith("USER#") and sk.startswith("TASK#")):
        return None
    return pk.removeprefix("USER#"), sk.removeprefix("TASK#")


def task_item_key(owner: str, task_id: str) -> dict[str, str]:
    return {"pk": user_key(owner), "sk": task_key(task_id)}


def attachment_item_key(owner: str, task_id: str, attachment_id: str) -> dict[str, str]:
    return {"pk": user_key(owner), "sk": attachment_prefix(task_id) + existing_id(attachment_id)}


def status_key(owner: str, status: str) -> str:
    return f"{user_key(owner)}#STATUS#{status}"


def due_key(due_at: str, task_id: str) -> str:
    return f"{due_at}#{task_id}"


def index_keys(owner: str, task_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The index key attributes that follow the fields among `values` (None: the attribute goes)."""
    keys: dict[str, Any] = {}
    if "status" in values:
        keys["gsi1pk"] = status_key(owner, values["status"])
    if "dueDate" in values:
        due = values["dueDate"]
        keys["gsi2pk"] = None if due is None else user_key(owner)
        keys["gsi2sk"] = None if due is None else due_key(clock.parse_instant(due), task_id)
    return keys


def field_attributes(owner: str, task_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every item attribute that `values` (field name -> value) decide, index keys included (None: absent)."""
    attributes: dict[str, Any] = {}
    for name, value in values.items():
        attributes.update(FIELDS_BY_NAME[name].attributes(value))
    return {**attributes, **index_keys(owner, task_id, values)}


def task_item(task: Task) -> dict[str, Any]:
    values = {row.name: getattr(task, row.name) for row in TASK_FIELDS}
    item = {**task_item_key(task.userId, task.taskId), "gsi1sk": task_key(task.taskId)}
    item.update(field_attributes(task.userId, task.taskId, values))
    return {name: value for name, value in item.items() if value is not None}


_PLAIN: dict[Stored, Callable[[Any], Any]] = {
    Stored.TEXT: str,
    Stored.NUMBER: int,
    Stored.TEXT_LIST: list,
    Stored.FLAG: bool,
}
_TYPED: dict[Stored, Callable[[Any], Any]] = {
    Stored.TEXT: operator.itemgetter("S"),
    Stored.NUMBER: lambda value: int(value["N"]),
    Stored.TEXT_LIST: lambda value: [element["S"] for element in value["L"]],
    Stored.FLAG: operator.itemgetter("BOOL"),
}


def _reader(
    rows: tuple[TaskField, ...], kinds: dict[Stored, Callable[[Any], Any]]
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Field values from an item: each attribute read as its field is stored; absent, the field's default."""
    plan = [(row.name, row.attribute, kinds[row.spec.stored], _fallback(row)) for row in rows]

    def read(item: Mapping[str, Any]) -> dict[str, Any]:
        get = item.get
        return {
            name: fallback() if (value := get(attribute)) is None else convert(value)
            for name, attribute, convert, fallback in plan
        }

    return read


def _fallback(row: TaskField) -> Callable[[], Any]:
    """What an absent attribute reads as: the field's default; a required field's absence is a KeyError."""
    if not row.required:
        return row.default_value

    def missing() -> Any:
        raise KeyError(row.attribute)

    return missing


_task_values = _reader(TASK_FIELDS, _PLAIN)


def task_from_item(item: dict[str, Any]) -> Task:
    return Task(**_task_values(item))


_task_json = _reader(PUBLIC_FIELDS, _TYPED)


def task_json_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A task's public fields straight from its DynamoDB item (typed), as `Task.to_json()` gives them.

    The export's fast path: no deserializer, no model, for tens of thousands of items a response.
    """
    return _task_json(item)


def attachment_item(attachment: Attachment) -> dict[str, Any]:
    item = {
        **attachment_item_key(attachment.userId, attachment.taskId, attachment.attachmentId),
        **asdict(attachment),
    }
    if attachment.status == "pending":
        item["expiresAt"] = pending_record_ttl(attachment.uploadExpiresAt)
    return item


def pending_record_ttl(upload_expires_at: int) -> int:
    """When DynamoDB TTL may remove a pending record whose upload window ends at `upload_expires_at`."""
    return upload_expires_at + PENDING_RECORD_GRACE_SECONDS


def attachment_from_item(item: dict[str, Any]) -> Attachment:
    return Attachment(
        attachmentId=item["attachmentId"],
        taskId=item["taskId"],
        userId=item["userId"],
        fileName=item["fileName"],
        contentType=item["contentType"],
        size=int(item["size"]),
        status=item["status"],
        createdAt=item["createdAt"],
        key=item["key"],
        uploadExpiresAt=int(item["uploadExpiresAt"]),
    )


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}
