"""Attachment records in DynamoDB, next to their task: pk=USER#<owner>, sk=ATT#<taskId>#<attachmentId>.

The task item counts the records that hold a slot (`pending` and `available` ones) in `attachmentCount`,
and `attachmentVersion` moves on every grant, delete and recount. Each write that makes a record start or
stop holding a slot changes the count in the same transaction, and nothing makes a record that stopped
counting count again: so the count is never below the records it counts, and never above the limit. Only
DynamoDB TTL (a dead pending record, a day after its window) removes a counted record without the count;
that leaves the count too high, never too low, until the next recount.
"""

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.data.aws_errors import aws_errors
from core.data.items import (
    attachment_from_item,
    attachment_item,
    attachment_item_key,
    attachment_prefix,
    deserialize,
    pending_record_ttl,
    serialize,
    task_item_key,
    user_key,
)
from core.data.tasks import STORE, TaskRepository
from core.domain.errors import DomainError, LimitReached, NotFound, ServiceUnavailable
from core.domain.models import Attachment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# Stored attributes of the task item (a compatibility surface: tasks stored before the version have none).
COUNT = "attachmentCount"
VERSION = "attachmentVersion"
FORGOTTEN_PER_RECOUNT = 99  # a transaction holds at most 100 items: the task's and up to 99 dead records
UNCOUNT_ATTEMPTS = 3


@dataclass(frozen=True)
class Tally:
    """The task's counter as read: the records it counts, and its version (0: never moved)."""

    count: int
    version: int


class _Refused(DomainError):
    """A transaction's condition failed; the caller reads the items again to learn why."""


class AttachmentRecords:
    def __init__(self, tasks: TaskRepository):
        self._tasks = tasks
        self._client = tasks.client
        self._table = tasks.table_name

    def add(self, attachment: Attachment, max_count: int) -> None:
        """Store a pending record and count it on its task, in one transaction.

        The task's counter is the serialization point: concurrent grants cannot exceed `max_count`.
        NotFound when the task does not exist, LimitReached when it is at the limit.
        """
        owner, task_id = attachment.userId, attachment.taskId
        with aws_errors(STORE, condition_failed=lambda _: self._why_refused(owner, task_id)):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize(task_item_key(owner, task_id)),
                            "UpdateExpression": "SET hasAttachments = :yes, "
                            "#count = if_not_exists(#count, :zero) + :one, "
                            "#version = if_not_exists(#version, :zero) + :one",
                            "ConditionExpression": "attribute_exists(pk) AND "
                            "(attribute_not_exists(#count) OR #count < :max)",
                            "ExpressionAttributeNames": {"#count": COUNT, "#version": VERSION},
                            "ExpressionAttributeValues": serialize(
                                {":yes": True, ":zero": 0, ":one": 1, ":max": max_count}
                            ),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": serialize(attachment_item(attachment)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )

    def tally(self, owner: str, task_id: str) -> Tally:
        """The task's counter (NotFound when the task does not exist)."""
        with aws_errors(STORE):
            response = self._client.get_item(
                TableName=self._table,
                Key=serialize(task_item_key(owner, task_id)),
                ProjectionExpression="#count, #version",
                ExpressionAttributeNames={"#count": COUNT, "#version": VERSION},
                ConsistentRead=True,
            )
        if "Item" not in response:
            raise NotFound("task not found")
        item = deserialize(response["Item"])
        return Tally(int(item.get(COUNT, 0)), int(item.get(VERSION, 0)))

    def recount(self, owner: str, task_id: str, seen: Tally, counted: int, dead: list[Attachment]) -> bool:
        """Forget `dead` records and set the counter to the `counted` records less those, in one transaction.

        `counted` and `dead` (pending records past their window, at most FORGOTTEN_PER_RECOUNT) are what a
        read after `seen` found. The write happens only if no grant, delete or recount came in between (the
        version is still the one seen: a count that went down and up again cannot pass for unchanged) and
        each dead record is still exactly as read (no upload or replayed grant revived it). False otherwise.
        """
        version = "#version = :seen" if seen.version else "attribute_not_exists(#version)"
        values = {":counted": counted - len(dead), ":next": seen.version + 1}
        if seen.version:
            values[":seen"] = seen.version
        forget: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": serialize(attachment_item_key(owner, task_id, record.attachmentId)),
                    "ConditionExpression": "#status = :pending AND uploadExpiresAt = :until",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": serialize({":pending": "pending", ":until": record.uploadExpiresAt}),
                }
            }
            for record in dead
        ]
        try:
            with aws_errors(STORE, condition_failed=lambda _: _Refused()):
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": serialize(task_item_key(owner, task_id)),
                                "UpdateExpression": "SET #count = :counted, #version = :next",
                                "ConditionExpression": f"attribute_exists(pk) AND {version}",
                                "ExpressionAttributeNames": {"#count": COUNT, "#version": VERSION},
                                "ExpressionAttributeValues": serialize(values),
                            }
                        },
                        *forget,
                    ]
                )
        except _Refused:
            return False
        return True

    def _why_refused(self, owner: str, task_id: str) -> DomainError:
        self.tally(owner, task_id)  # NotFound when the task is gone
        return LimitReached("the task has as many attachments as it may have")

    def of_task(self, owner: str, task_id: str) -> list[Attachment]:
        found: list[Attachment] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": serialize({":pk": user_key(owner), ":prefix": attachment_prefix(task_id)}),
            "ConsistentRead": True,
        }
        while True:
            with aws_errors(STORE):
                response = self._client.query(**request)
            found.extend(attachment_from_item(deserialize(item)) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get(self, owner: str, task_id: str, attachment_id: str) -> Attachment:
        with aws_errors(STORE):
            response = self._client.get_item(
                TableName=self._table,
                Key=serialize(attachment_item_key(owner, task_id, attachment_id)),
                ConsistentRead=True,
            )
        if "Item" not in response:
            raise NotFound("attachment not found")
        return attachment_from_item(deserialize(response["Item"]))

    def stop_counting(self, attachment: Attachment) -> None:
        """Make a record that counts `deleting` and uncount it, in one transaction: from then on no upload
        makes it available, and deleting it again does not lower the counter again.

        NotFound when the task or the record is gone; nothing to do when a concurrent delete did it first.
        """
        owner, task_id = attachment.userId, attachment.taskId
        for _ in range(UNCOUNT_ATTEMPTS):
            try:
                with aws_errors(STORE, condition_failed=lambda _: _Refused()):
                    self._client.transact_write_items(
                        TransactItems=[
                            self._to_deleting(attachment),
                            {
                                "Update": {
                                    "TableName": self._table,
                                    "Key": serialize(task_item_key(owner, task_id)),
                                    "UpdateExpression": "SET #count = #count - :one, "
                                    "#version = if_not_exists(#version, :zero) + :one",
                                    "ConditionExpression": "attribute_exists(pk) AND #count > :zero",
                                    "ExpressionAttributeNames": {"#count": COUNT, "#version": VERSION},
                                    "ExpressionAttributeValues": serialize({":one": 1, ":zero": 0}),
                                }
                            },
                        ]
                    )
                return
            except _Refused:
                pass
            tally = self.tally(owner, task_id)  # NotFound when the task is gone
            current = self.get(owner, task_id, attachment.attachmentId)  # NotFound when it was forgotten
            if not current.counts():
                return
            if tally.count <= 0:
                # Only a task counted by the code before this one can count fewer records than it holds:
                # the record stops counting without the counter.
                try:
                    with aws_errors(STORE, condition_failed=lambda _: _Refused()):
                        self._client.update_item(**self._to_deleting(attachment)["Update"])
                    return
                except _Refused:
                    pass
        raise ServiceUnavailable(f"the {STORE} is busy; retry shortly")

    def _to_deleting(self, attachment: Attachment) -> "TransactWriteItemTypeDef":
        return {
            "Update": {
                "TableName": self._table,
                "Key": serialize(attachment_item_key(attachment.userId, attachment.taskId, attachment.attachmentId)),
                "UpdateExpression": "SET #status = :deleting REMOVE expiresAt",
                "ConditionExpression": "#status IN (:pending, :available)",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": serialize(
                    {":deleting": "deleting", ":pending": "pending", ":available": "available"}
                ),
            }
        }

    def forget(self, attachment: Attachment) -> None:
        """Delete a record that no longer counts (`deleting`, its objects gone); nothing if it is gone already."""
        with aws_errors(STORE):
            self._client.delete_item(
                TableName=self._table,
                Key=serialize(attachment_item_key(attachment.userId, attachment.taskId, attachment.attachmentId)),
                ConditionExpression="attribute_not_exists(pk) OR #status = :deleting",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize({":deleting": "deleting"}),
            )

    def delete(self, attachments: list[Attachment]) -> None:
        """Delete records whose task is gone (nothing counts them any more)."""
        keys = [attachment_item_key(a.userId, a.taskId, a.attachmentId) for a in attachments]
        for start in range(0, len(keys), 25):
            self._tasks.batch_write([{"DeleteRequest": {"Key": serialize(key)}} for key in keys[start : start + 25]])

    def mark_available(self, owner: str, task_id: str, attachment_id: str, size: int) -> None:
        """Mark a record that counts available, while its task exists; NotFound otherwise (no such record,
        one that no longer counts, another size, or a task that is gone)."""
        with aws_errors(STORE, condition_failed=lambda _: NotFound("no counted attachment of a task for this object")):
            self._client.transact_write_items(
                TransactItems=[
                    self._task_exists(owner, task_id),
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize(attachment_item_key(owner, task_id, attachment_id)),
                            "UpdateExpression": "SET #status = :available REMOVE expiresAt",
                            "ConditionExpression": "#size = :size AND #status IN (:pending, :available)",
                            "ExpressionAttributeNames": {"#status": "status", "#size": "size"},
                            "ExpressionAttributeValues": serialize(
                                {":available": "available", ":pending": "pending", ":size": size}
                            ),
                        }
                    },
                ]
            )

    def reopen(self, attachment: Attachment, upload_expires_at: int) -> Attachment:
        """Give a pending record a new upload window (it keeps its slot), while its task exists; NotFound when
        it is no longer pending or the task is gone. The task's version moves too (as on every change to its
        records), which is also how the task's existence is checked: with the one action, UpdateItem, that
        the CRUD function's role already has for the grant."""
        owner, task_id = attachment.userId, attachment.taskId
        with aws_errors(STORE, condition_failed=lambda _: NotFound("no pending attachment")):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize(task_item_key(owner, task_id)),
                            "UpdateExpression": "SET #version = if_not_exists(#version, :zero) + :one",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#version": VERSION},
                            "ExpressionAttributeValues": serialize({":one": 1, ":zero": 0}),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize(attachment_item_key(owner, task_id, attachment.attachmentId)),
                            "UpdateExpression": "SET uploadExpiresAt = :until, expiresAt = :ttl",
                            "ConditionExpression": "#status = :pending",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": serialize(
                                {
                                    ":pending": "pending",
                                    ":until": upload_expires_at,
                                    ":ttl": pending_record_ttl(upload_expires_at),
                                }
                            ),
                        }
                    },
                ]
            )
        return replace(attachment, uploadExpiresAt=upload_expires_at)

    def _task_exists(self, owner: str, task_id: str) -> "TransactWriteItemTypeDef":
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": serialize(task_item_key(owner, task_id)),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
