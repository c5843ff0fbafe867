"""How tasks and attachment records are laid out in the one DynamoDB table.

Tasks:       pk=USER#<owner>  sk=TASK#<taskId>
             byStatus:  gsi1pk=USER#<owner>#STATUS#<status>  gsi1sk=TASK#<taskId>
             byDueDate: gsi2pk=USER#<owner>  gsi2sk=<dueAt>#<taskId>  (only tasks with a due date)
Attachments: pk=USER#<owner>  sk=ATT#<taskId>#<attachmentId>
"""

from dataclasses import asdict
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from core.domain import clock, ids
from core.domain.errors import NotFound
from core.domain.models import Attachment, Task

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


def task_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        **task_item_key(task.userId, task.taskId),
        "gsi1pk": status_key(task.userId, task.status),
        "gsi1sk": task_key(task.taskId),
        "taskId": task.taskId,
        "userId": task.userId,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": task.priority,
        "tags": task.tags,
        "createdAt": task.createdAt,
        "updatedAt": task.updatedAt,
        "version": task.version,
    }
    if task.dueDate is not None:
        due_at = clock.parse_instant(task.dueDate)
        item.update(
            dueDate=task.dueDate, dueAt=due_at, gsi2pk=user_key(task.userId), gsi2sk=due_key(due_at, task.taskId)
        )
    if task.completedAt is not None:
        item["completedAt"] = task.completedAt
    return item


def task_from_item(item: dict[str, Any]) -> Task:
    return Task(
        taskId=item["taskId"],
        userId=item["userId"],
        title=item["title"],
        description=item.get("description", ""),
        status=item["status"],
        priority=item["priority"],
        dueDate=item.get("dueDate"),
        tags=list(item.get("tags", [])),
        createdAt=item["createdAt"],
        updatedAt=item["updatedAt"],
        completedAt=item.get("completedAt"),
        version=int(item["version"]),
        hasAttachments=bool(item.get("hasAttachments", False)),
    )


def task_json_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A task's public fields straight from its DynamoDB item, as `Task.to_json()` gives them.

    The export's fast path: no deserializer, no model, for tens of thousands of items a response.
    """
    due, completed = item.get("dueDate"), item.get("completedAt")
    description, tags = item.get("description"), item.get("tags")
    return {
        "taskId": item["taskId"]["S"],
        "userId": item["userId"]["S"],
        "title": item["title"]["S"],
        "description": description["S"] if description else "",
        "status": item["status"]["S"],
        "priority": item["priority"]["S"],
        "dueDate": due["S"] if due else None,
        "tags": [tag["S"] for tag in tags["L"]] if tags else [],
        "createdAt": item["createdAt"]["S"],
        "updatedAt": item["updatedAt"]["S"],
        "completedAt": completed["S"] if completed else None,
        "version": int(item["version"]["N"]),
    }


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
