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
from core.domain.errors import NotFound
from core.domain.models import Attachment


class AttachmentRecords:
    def __init__(self, tasks: TaskRepository):
        self._tasks = tasks
        self._client = tasks.client
        self._table = tasks.table_name

    def add(self, attachment: Attachment) -> None:
        """Store a pending record, in one transaction with marking its task (which must exist)."""
        owner, task_id = attachment.userId, attachment.taskId
        with aws_errors(STORE, condition_failed=lambda _: NotFound("task not found")):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": serialize(task_item_key(owner, task_id)),
                            "UpdateExpression": "SET hasAttachments = :yes",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": serialize({":yes": True}),
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
