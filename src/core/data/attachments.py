"""Attachment records in DynamoDB, next to their task: pk=USER#<owner>, sk=ATT#<taskId>#<attachmentId>."""

from typing import Any

from core.data.aws_errors import aws_errors
from core.data.items import (
    attachment_from_item,
    attachment_item,
    attachment_item_key,
    attachment_prefix,
    deserialize,
    serialize,
    task_item_key,
    user_key,
)
from core.data.tasks import STORE, TaskRepository
from core.domain.errors import DomainError, LimitReached, NotFound
from core.domain.models import Attachment


class AttachmentRecords:
    def __init__(self, tasks: TaskRepository):
        self._tasks = tasks
        self._client = tasks.client
        self._table = tasks.table_name

    def add(self, attachment: Attachment, max_count: int) -> None:
        """Store a pending record and count it on its task, in one transaction.

        The task's `attachmentCount` is the serialization point: concurrent grants cannot exceed
        `max_count`. NotFound when the task does not exist, LimitReached when it is at the limit.
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
                            "attachmentCount = if_not_exists(attachmentCount, :zero) + :one",
                            "ConditionExpression": "attribute_exists(pk) AND "
                            "(attribute_not_exists(attachmentCount) OR attachmentCount < :max)",
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

    def count(self, owner: str, task_id: str) -> int:
        """The task's attachment counter (an upper bound of its live attachments)."""
        with aws_errors(STORE):
            response = self._client.get_item(
                TableName=self._table,
                Key=serialize(task_item_key(owner, task_id)),
                ProjectionExpression="attachmentCount",
                ConsistentRead=True,
            )
        if "Item" not in response:
            raise NotFound("task not found")
        return int(deserialize(response["Item"]).get("attachmentCount", 0))

    def recount(self, owner: str, task_id: str, seen: int, live: int) -> bool:
        """Lower the counter from `seen` to `live` (dead uploads no longer count); False if it moved meanwhile."""
        try:
            with aws_errors(STORE, condition_failed=lambda _: NotFound("the counter moved")):
                self._client.update_item(
                    TableName=self._table,
                    Key=serialize(task_item_key(owner, task_id)),
                    UpdateExpression="SET attachmentCount = :live",
                    ConditionExpression="attribute_exists(pk) AND attachmentCount = :seen",
                    ExpressionAttributeValues=serialize({":live": live, ":seen": seen}),
                )
        except NotFound:
            return False
        return True

    def _why_refused(self, owner: str, task_id: str) -> DomainError:
        self.count(owner, task_id)  # NotFound when the task is gone
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

    def delete_one(self, attachment: Attachment) -> None:
        """Delete a record and uncount it on its task, in one transaction (just the record if the task is gone)."""
        key = attachment_item_key(attachment.userId, attachment.taskId, attachment.attachmentId)
        try:
            with aws_errors(STORE, condition_failed=lambda _: NotFound("task not found")):
                self._client.transact_write_items(
                    TransactItems=[
                        {"Delete": {"TableName": self._table, "Key": serialize(key)}},
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": serialize(task_item_key(attachment.userId, attachment.taskId)),
                                "UpdateExpression": "SET attachmentCount = attachmentCount - :one",
                                "ConditionExpression": "attribute_exists(pk) AND attachmentCount > :zero",
                                "ExpressionAttributeValues": serialize({":one": 1, ":zero": 0}),
                            }
                        },
                    ]
                )
        except NotFound:
            self.delete([attachment])

    def delete(self, attachments: list[Attachment]) -> None:
        keys = [attachment_item_key(a.userId, a.taskId, a.attachmentId) for a in attachments]
        for start in range(0, len(keys), 25):
            self._tasks.batch_write([{"DeleteRequest": {"Key": serialize(key)}} for key in keys[start : start + 25]])

    def mark_available(self, owner: str, task_id: str, attachment_id: str, size: int) -> None:
        """Mark a pending record available; NotFound when there is no such record (or its size differs)."""
        with aws_errors(STORE, condition_failed=lambda _: NotFound("no pending attachment for this object")):
            self._client.update_item(
                TableName=self._table,
                Key=serialize(attachment_item_key(owner, task_id, attachment_id)),
                UpdateExpression="SET #status = :available REMOVE expiresAt",
                ConditionExpression="attribute_exists(pk) AND #size = :size",
                ExpressionAttributeNames={"#status": "status", "#size": "size"},
                ExpressionAttributeValues=serialize({":available": "available", ":size": size}),
            )
