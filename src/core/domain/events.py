"""Domain events: what the service announces on its EventBridge bus after a change is committed.

Compatibility surface: the detail types and the `detail` layout below are what consumers (rules, webhooks,
other stacks) match and parse; `schemas/events/*.json` is their published form and a test keeps the two in
step. Add fields, never rename or drop one.

Events are built from the state before and after one committed change, and from nothing else, so a change
delivered twice gives the same event twice, with the same `eventId`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SOURCE = "serverless-tasks"

TASK_CREATED = "Task Created"
TASK_UPDATED = "Task Updated"
TASK_COMPLETED = "Task Completed"
TASK_DELETED = "Task Deleted"
ATTACHMENT_AVAILABLE = "Attachment Available"
ATTACHMENT_DELETED = "Attachment Deleted"
DETAIL_TYPES = (TASK_CREATED, TASK_UPDATED, TASK_COMPLETED, TASK_DELETED, ATTACHMENT_AVAILABLE, ATTACHMENT_DELETED)

# Bookkeeping that changes with every write: not listed among an update's changed fields.
_BOOKKEEPING = frozenset({"version", "updatedAt"})
# An attachment's life as versions: available (1), deleted (2). Its events are ordered by them.
ATTACHMENT_AVAILABLE_VERSION = 1
ATTACHMENT_DELETED_VERSION = 2

Json = dict[str, Any]


@dataclass(frozen=True)
class DomainEvent:
    """One event: its EventBridge detail type and its `detail` (camelCase JSON)."""

    detail_type: str
    detail: Json

    @property
    def event_id(self) -> str:
        return str(self.detail["eventId"])


def task_event(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, occurred_at: str
) -> DomainEvent | None:
    """The event of one committed change of a task, given its public JSON before and after (None: absent).

    One event per version: `Task Created`, `Task Completed` (the status became completed), `Task Updated`,
    or `Task Deleted` (whose version is the last one plus one, so it sorts after every update). A write that
    left the version as it was (bookkeeping only) announces nothing. A create or update occurred at the task's
    own `updatedAt`; a deletion at `occurred_at` (the stream's approximate time), or the last `updatedAt` if later.
    """
    if after is None:
        if before is None:
            return None
        version = int(before["version"]) + 1
        deleted_at = max(occurred_at, str(before["updatedAt"]))  # a coarse clock never puts it before the last write
        return _task(TASK_DELETED, before, version, deleted_at, changed=[], state=None)
    version = int(after["version"])
    if before is None:
        return _task(TASK_CREATED, after, version, after["updatedAt"], changed=sorted(after), state=after)
    if int(before["version"]) == version:
        return None
    changed = sorted(
        name
        for name in after.keys() | before.keys()
        if name not in _BOOKKEEPING and before.get(name) != after.get(name)
    )
    completed = after.get("status") == "completed" and before.get("status") != "completed"
    return _task(TASK_COMPLETED if completed else TASK_UPDATED, after, version, after["updatedAt"], changed, after)


def attachment_event(
    owner: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, occurred_at: str
) -> DomainEvent | None:
    """The event of one committed change of an attachment record (its public JSON before and after).

    `Attachment Available` when its upload landed (pending -> available), `Attachment Deleted` when an
    available attachment stops being one: its record goes, or turns `deleting` (a delete uncounts it first,
    then removes its objects and its record). Pending records that come and go are not announced.
    """
    was_available = before is not None and before.get("status") == "available"
    is_available = after is not None and after.get("status") == "available"
    if after is not None and is_available and not was_available:
        return _attachment(ATTACHMENT_AVAILABLE, owner, after, ATTACHMENT_AVAILABLE_VERSION, occurred_at, ["status"])
    if was_available and not is_available and before is not None:
        return _attachment(ATTACHMENT_DELETED, owner, before, ATTACHMENT_DELETED_VERSION, occurred_at, [])
    return None


def _task(
    detail_type: str,
    task: Mapping[str, Any],
    version: int,
    occurred_at: str,
    changed: list[str],
    state: Mapping[str, Any] | None,
) -> DomainEvent:
    task_id = str(task["taskId"])
    return DomainEvent(
        detail_type,
        {
            "eventId": f"{task_id}:{version}",
            "owner": task["userId"],
            "taskId": task_id,
            "version": version,
            "occurredAt": occurred_at,
            "changedFields": changed,
            "task": None if state is None else dict(state),
        },
    )


def _attachment(
    detail_type: str, owner: str, attachment: Mapping[str, Any], version: int, occurred_at: str, changed: list[str]
) -> DomainEvent:
    task_id, attachment_id = str(attachment["taskId"]), str(attachment["attachmentId"])
    return DomainEvent(
        detail_type,
        {
            "eventId": f"{task_id}:{attachment_id}:{version}",
            "owner": owner,
            "taskId": task_id,
            "version": version,
            "occurredAt": occurred_at,
            "changedFields": changed,
            "task": None,
            "attachmentId": attachment_id,
            "attachment": dict(attachment),
        },
    )
