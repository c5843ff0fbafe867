"""The only code that talks to DynamoDB: items in, domain objects out, AWS errors turned into domain errors."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from core.domain import clock, ids
from core.domain.cursor import Position
from core.domain.errors import InvalidCursor, NotFound, PreconditionFailed, ServiceUnavailable
from core.domain.listing import ListQuery
from core.domain.models import Attachment, Task

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

STATUS_INDEX = "byStatus"
DUE_DATE_INDEX = "byDueDate"
_INDEX_KEYS = {
    None: ("pk", "sk"),
    STATUS_INDEX: ("pk", "sk", "gsi1pk", "gsi1sk"),
    DUE_DATE_INDEX: ("pk", "sk", "gsi2pk", "gsi2sk"),
}
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "SlowDown",  # S3's throttling
        "InternalError",  # S3's 500
    }
)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def user_key(owner: str) -> str:
    return f"USER#{owner}"


def task_key(task_id: str) -> str:
    return f"TASK#{_existing(task_id)}"


def attachment_prefix(task_id: str) -> str:
    return f"ATT#{_existing(task_id)}#"


def _existing(item_id: str) -> str:
    """An id from a request, checked before it goes into a key: one this service cannot have made
    (too long for a DynamoDB key, say) names nothing, so it is a 404 without a round trip."""
    if not ids.is_valid(item_id):
        raise NotFound("not found")
    return item_id


PENDING_RECORD_GRACE_SECONDS = 24 * 3600  # DynamoDB TTL removes dead pending records this long after their window


@dataclass(frozen=True)
class _QueryPlan:
    index: str | None
    request: dict[str, Any]
    filtered: bool


class TaskRepository:
    def __init__(self, client: "DynamoDBClient", table_name: str):
        self._client = client
        self._table = table_name

    def create(self, task: Task) -> None:
        with _unavailable_on_failure():
            self._client.put_item(
                TableName=self._table,
                Item=_serialize(_to_item(task)),
                ConditionExpression="attribute_not_exists(pk)",
            )

    def get(self, owner: str, task_id: str) -> Task:
        with _unavailable_on_failure():
            response = self._client.get_item(
                TableName=self._table, Key=_serialize(_key(owner, task_id)), ConsistentRead=True
            )
        if "Item" not in response:
            raise NotFound("task not found")
        return _from_item(_deserialize(response["Item"]))

    def update(self, owner: str, task_id: str, changes: dict[str, Any], expected_version: int | None) -> Task:
        """Apply field changes in one conditional write; version and updatedAt move on with it."""
        now = clock.utc_now()
        sets = ["#updatedAt = :now", "#version = #version + :one"]
        removes: list[str] = []
        values: dict[str, Any] = {":now": now, ":one": 1}
        names = {"#updatedAt": "updatedAt", "#version": "version"}

        def assign(attribute: str, value: Any) -> None:
            names[f"#{attribute}"] = attribute
            values[f":{attribute}"] = value
            sets.append(f"#{attribute} = :{attribute}")

        def remove(attribute: str) -> None:
            names[f"#{attribute}"] = attribute
            removes.append(f"#{attribute}")

        for field, value in changes.items():
            if field == "dueDate":
                if value is None:
                    for attribute in ("dueDate", "dueAt", "gsi2pk", "gsi2sk"):
                        remove(attribute)
                else:
                    due_at = clock.parse_instant(value)
                    assign("dueDate", value)
                    assign("dueAt", due_at)
                    assign("gsi2pk", user_key(owner))
                    assign("gsi2sk", f"{due_at}#{task_id}")
            elif field == "status":
                assign("status", value)
                assign("gsi1pk", f"{user_key(owner)}#STATUS#{value}")
                if value == "completed":
                    names["#completedAt"] = "completedAt"
                    sets.append("#completedAt = if_not_exists(#completedAt, :now)")
                else:
                    remove("completedAt")
            else:
                assign(field, value)

        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = "attribute_exists(pk)"
        if expected_version is not None:
            condition += " AND #version = :expected"
            values[":expected"] = expected_version
        with _unavailable_on_failure(), _conditional(expected_version):
            response = self._client.update_item(
                TableName=self._table,
                Key=_serialize(_key(owner, task_id)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return _from_item(_deserialize(response["Attributes"]))

    def delete(self, owner: str, task_id: str, expected_version: int | None) -> Task:
        condition = "attribute_exists(pk)"
        extra: dict[str, Any] = {}
        if expected_version is not None:
            condition += " AND #version = :expected"
            extra = {
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": _serialize({":expected": expected_version}),
            }
        with _unavailable_on_failure(), _conditional(expected_version):
            response = self._client.delete_item(
                TableName=self._table,
                Key=_serialize(_key(owner, task_id)),
                ConditionExpression=condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        return _from_item(_deserialize(response["Attributes"]))

    def page(
        self, owner: str, query: ListQuery, start: Position | None, limit: int
    ) -> tuple[list[Task], Position | None]:
        """Up to `limit` matching tasks after `start`, and the position of the last one if more follow."""
        tasks: list[tuple[Task, Position]] = []
        for found in self.scroll(owner, query, start, batch=limit + 1):
            tasks.append(found)
            if len(tasks) > limit:
                return [task for task, _ in tasks[:limit]], tasks[limit - 1][1]
        return [task for task, _ in tasks], None

    def scroll(
        self, owner: str, query: ListQuery, start: Position | None, batch: int = 100
    ) -> Iterator[tuple[Task, Position]]:
        """Every matching task after `start`, read from DynamoDB one page at a time, with its position."""
        plan = _plan(owner, query)
        key_names = _INDEX_KEYS[plan.index]
        if start is not None:
            self._check_position(owner, start, key_names)
        request = dict(plan.request, TableName=self._table)
        # With a filter, DynamoDB's Limit counts items read before filtering: read more per call.
        request["Limit"] = max(batch, 200) if plan.filtered else batch
        exclusive_start = _serialize(start) if start else None
        while True:
            if exclusive_start:
                request["ExclusiveStartKey"] = exclusive_start
            with _unavailable_on_failure():
                response = self._client.query(**request)
            for raw in response["Items"]:
                item = _deserialize(raw)
                yield _from_item(item), {name: item[name] for name in key_names}
            exclusive_start = response.get("LastEvaluatedKey")
            del response  # one page in memory at a time: let this one go before reading the next
            if not exclusive_start:
                return

    # --- attachment records: pk=USER#<owner>, sk=ATT#<taskId>#<attachmentId> ---------------------------

    def add_attachment(self, attachment: Attachment) -> None:
        """Store a pending attachment record, in one transaction with marking its task (which must exist)."""
        owner, task_id = attachment.userId, attachment.taskId
        try:
            with _unavailable_on_failure():
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": _serialize(_key(owner, task_id)),
                                "UpdateExpression": "SET hasAttachments = :yes",
                                "ConditionExpression": "attribute_exists(pk)",
                                "ExpressionAttributeValues": _serialize({":yes": True}),
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": _serialize(_attachment_item(attachment)),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise NotFound("task not found") from None
            raise

    def attachments(self, owner: str, task_id: str) -> list[Attachment]:
        found: list[Attachment] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _serialize({":pk": user_key(owner), ":prefix": attachment_prefix(task_id)}),
            "ConsistentRead": True,
        }
        while True:
            with _unavailable_on_failure():
                response = self._client.query(**request)
            found.extend(_attachment_from_item(_deserialize(item)) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_attachment(self, owner: str, task_id: str, attachment_id: str) -> Attachment:
        with _unavailable_on_failure():
            response = self._client.get_item(
                TableName=self._table,
                Key=_serialize(_attachment_key(owner, task_id, attachment_id)),
                ConsistentRead=True,
            )
        if "Item" not in response:
            raise NotFound("attachment not found")
        return _attachment_from_item(_deserialize(response["Item"]))

    def delete_attachment_records(self, attachments: list[Attachment]) -> None:
        keys = [_attachment_key(a.userId, a.taskId, a.attachmentId) for a in attachments]
        for start in range(0, len(keys), 25):
            requests = {self._table: [{"DeleteRequest": {"Key": _serialize(key)}} for key in keys[start : start + 25]]}
            for _ in range(5):
                with _unavailable_on_failure():
                    response = self._client.batch_write_item(RequestItems=requests)  # type: ignore[arg-type]
                requests = response.get("UnprocessedItems") or {}  # type: ignore[assignment]
                if not requests:
                    break
            else:
                raise ServiceUnavailable("the task store is busy; retry shortly")

    def mark_available(self, owner: str, task_id: str, attachment_id: str, size: int) -> bool:
        """Mark a pending record available; False when there is no such record (or its size differs)."""
        try:
            with _unavailable_on_failure():
                self._client.update_item(
                    TableName=self._table,
                    Key=_serialize(_attachment_key(owner, task_id, attachment_id)),
                    UpdateExpression="SET #status = :available REMOVE expiresAt",
                    ConditionExpression="attribute_exists(pk) AND #size = :size",
                    ExpressionAttributeNames={"#status": "status", "#size": "size"},
                    ExpressionAttributeValues=_serialize({":available": "available", ":size": size}),
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @staticmethod
    def _check_position(owner: str, position: Position, key_names: tuple[str, ...]) -> None:
        if set(position) != set(key_names) or position["pk"] != user_key(owner):
            raise InvalidCursor("the cursor does not belong to this listing")


def _plan(owner: str, query: ListQuery) -> _QueryPlan:
    owner_key = user_key(owner)
    names: dict[str, str] = {}
    values: dict[str, Any] = {":pk": owner_key}
    filters: list[str] = []

    def add_filter(expression: str, attribute: str, value_name: str, value: Any) -> None:
        names[f"#{attribute}"] = attribute
        values[value_name] = value
        filters.append(expression)

    if query.sort == "dueDate":
        index: str | None = DUE_DATE_INDEX
        key = "gsi2pk = :pk"
        if query.due_after and query.due_before:
            key += " AND gsi2sk BETWEEN :after AND :before"
        elif query.due_after:
            key += " AND gsi2sk > :after"
        elif query.due_before:
            key += " AND gsi2sk < :before"
        if query.due_after:
            values[":after"] = query.due_after + "#~"  # "~" sorts after every task id
        if query.due_before:
            values[":before"] = query.due_before
        if query.status:
            add_filter("#status = :status", "status", ":status", query.status)
        forward = True
    else:
        if query.status:
            index = STATUS_INDEX
            key = "gsi1pk = :pk"
            values[":pk"] = f"{owner_key}#STATUS#{query.status}"
        else:
            index = None
            key = "pk = :pk AND begins_with(sk, :tasks)"
            values[":tasks"] = "TASK#"
        if query.due_after:
            add_filter("#dueAt > :after", "dueAt", ":after", query.due_after)
        if query.due_before:
            add_filter("#dueAt < :before", "dueAt", ":before", query.due_before)
        forward = False
    if query.priority:
        add_filter("#priority = :priority", "priority", ":priority", query.priority)
    if query.tag:
        add_filter("contains(#tags, :tag)", "tags", ":tag", query.tag)

    request: dict[str, Any] = {
        "KeyConditionExpression": key,
        "ExpressionAttributeValues": _serialize(values),
        "ScanIndexForward": forward,
    }
    if index:
        request["IndexName"] = index
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
        request["ExpressionAttributeNames"] = names
    return _QueryPlan(index, request, bool(filters))


def _key(owner: str, task_id: str) -> dict[str, str]:
    return {"pk": user_key(owner), "sk": task_key(task_id)}


def _to_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(task.userId, task.taskId),
        "gsi1pk": f"{user_key(task.userId)}#STATUS#{task.status}",
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
        item.update(dueDate=task.dueDate, dueAt=due_at, gsi2pk=user_key(task.userId), gsi2sk=f"{due_at}#{task.taskId}")
    if task.completedAt is not None:
        item["completedAt"] = task.completedAt
    return item


def _from_item(item: dict[str, Any]) -> Task:
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


def _attachment_key(owner: str, task_id: str, attachment_id: str) -> dict[str, str]:
    return {"pk": user_key(owner), "sk": attachment_prefix(task_id) + _existing(attachment_id)}


def _attachment_item(attachment: Attachment) -> dict[str, Any]:
    item = {
        **_attachment_key(attachment.userId, attachment.taskId, attachment.attachmentId),
        **asdict(attachment),
    }
    if attachment.status == "pending":
        item["expiresAt"] = attachment.uploadExpiresAt + PENDING_RECORD_GRACE_SECONDS
    return item


def _attachment_from_item(item: dict[str, Any]) -> Attachment:
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


class ObjectStore:
    """Attachment objects in S3: presigned uploads and downloads, and deletion of every version."""

    def __init__(self, client_factory: "Callable[[], S3Client]", bucket: str):
        self._client_factory = client_factory
        self._bucket = bucket

    @cached_property
    def _client(self) -> "S3Client":
        return self._client_factory()

    def presigned_post(self, key: str, content_type: str, size: int, expires_in: int) -> dict[str, Any]:
        """A browser-style POST upload whose policy pins the key, the content type and the exact size."""
        with _unavailable_on_failure():
            return self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"bucket": self._bucket},
                    ["eq", "$key", key],
                    ["eq", "$Content-Type", content_type],
                    ["content-length-range", size, size],
                ],
                ExpiresIn=expires_in,
            )

    def presigned_get(self, key: str, content_type: str, disposition: str, expires_in: int) -> str:
        with _unavailable_on_failure():
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": disposition,
                    "ResponseContentType": content_type,
                },
                ExpiresIn=expires_in,
            )

    def delete_everything(self, keys: list[str]) -> None:
        """Delete each key with all its versions and delete markers, so nothing of it is left."""
        for key in keys:
            versions: list[Any] = []
            with _unavailable_on_failure():
                pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self._bucket, Prefix=key)
                for page in pages:
                    for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if entry["Key"] == key:
                            versions.append({"Key": key, "VersionId": entry["VersionId"]})
            for start in range(0, len(versions), 1000):
                with _unavailable_on_failure():
                    response = self._client.delete_objects(
                        Bucket=self._bucket, Delete={"Objects": versions[start : start + 1000], "Quiet": True}
                    )
                if response.get("Errors"):
                    raise ServiceUnavailable("the attachment store did not delete every object; retry shortly")

    def delete_version(self, key: str, version_id: str | None) -> None:
        with _unavailable_on_failure():
            if version_id:
                self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            else:
                self._client.delete_object(Bucket=self._bucket, Key=key)


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES:
            raise ServiceUnavailable("the task store is busy; retry shortly") from exc
        raise
    except BotoCoreError as exc:
        raise ServiceUnavailable("the task store cannot be reached; retry shortly") from exc


@contextmanager
def _conditional(expected_version: int | None) -> Iterator[None]:
    """A failed write condition: 404 if the task is missing, 412 if it exists at another version."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        if "Item" in exc.response and expected_version is not None:
            raise PreconditionFailed("the task has changed since the version in If-Match") from None
        raise NotFound("task not found") from None
