"""Tasks in DynamoDB: every write is one conditional call; every listing is a Query, page by page."""

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import batched
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from core.data.aws_errors import aws_errors
from core.data.items import (
    deserialize,
    field_attributes,
    serialize,
    task_from_item,
    task_item,
    task_item_key,
    user_key,
)
from core.data.queries import plan
from core.domain import clock
from core.domain.cursor import Position
from core.domain.errors import DomainError, InvalidCursor, NotFound, PreconditionFailed, ServiceUnavailable
from core.domain.listing import ListQuery
from core.domain.models import Task

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STORE = "task store"
BATCH_WRITE_ATTEMPTS = 5
LIST_READ_BUDGET = 1000  # items one GET /tasks may read, matching or not (filters apply after the read)
LIST_MAX_CALLS = 4


@dataclass(frozen=True)
class QueryPage:
    items: list[dict[str, Any]]  # as DynamoDB returned them (typed attribute values)
    last_key: Position | None  # where the next page starts; None after the last one
    read: int  # items DynamoDB read for this page, matching or not
    key_names: tuple[str, ...]

    def position(self, item: dict[str, Any]) -> Position:
        """Where `item` sits in this Query: a cursor made from it resumes right after it."""
        return {name: item[name]["S"] for name in self.key_names}


class TaskRepository:
    def __init__(self, client: "DynamoDBClient", table_name: str):
        self._client = client
        self._table = table_name
        client.meta.events.register("before-parse.dynamodb.Query", _items_as_sent, unique_id=_items_as_sent.__name__)

    @property
    def client(self) -> "DynamoDBClient":
        return self._client

    @property
    def table_name(self) -> str:
        return self._table

    def create(self, task: Task) -> None:
        with aws_errors(STORE):
            self._client.put_item(
                TableName=self._table,
                Item=serialize(task_item(task)),
                ConditionExpression="attribute_not_exists(pk)",
            )

    def put_many(self, tasks: Iterable[Task]) -> None:
        """Store many new tasks at once, unconditionally (bulk loads: seeding, tests, benchmarks)."""
        for chunk in batched(tasks, 25, strict=False):
            self.batch_write([{"PutRequest": {"Item": serialize(task_item(task))}} for task in chunk])

    def batch_write(self, requests: list[dict[str, Any]]) -> None:
        """Up to 25 put or delete requests, retrying what DynamoDB leaves unprocessed."""
        pending: dict[str, Any] = {self._table: requests}
        for _ in range(BATCH_WRITE_ATTEMPTS):
            with aws_errors(STORE):
                response = self._client.batch_write_item(RequestItems=pending)
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                return
        raise ServiceUnavailable(f"the {STORE} is busy; retry shortly")

    def get(self, owner: str, task_id: str) -> Task:
        with aws_errors(STORE):
            response = self._client.get_item(
                TableName=self._table, Key=serialize(task_item_key(owner, task_id)), ConsistentRead=True
            )
        if "Item" not in response:
            raise NotFound("task not found")
        return task_from_item(deserialize(response["Item"]))

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

        for attribute, value in field_attributes(owner, task_id, changes).items():
            if value is None:  # a cleared field leaves the item: never a stored NULL
                remove(attribute)
            else:
                assign(attribute, value)
        if "status" in changes:  # completedAt follows the status
            if changes["status"] == "completed":
                names["#completedAt"] = "completedAt"
                sets.append("#completedAt = if_not_exists(#completedAt, :now)")
            else:
                remove("completedAt")

        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = "attribute_exists(pk)"
        if expected_version is not None:
            condition += " AND #version = :expected"
            values[":expected"] = expected_version
        with aws_errors(STORE, condition_failed=_missing_or_changed(expected_version)):
            response = self._client.update_item(
                TableName=self._table,
                Key=serialize(task_item_key(owner, task_id)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return task_from_item(deserialize(response["Attributes"]))

    def delete(self, owner: str, task_id: str, expected_version: int | None) -> Task:
        condition = "attribute_exists(pk)"
        extra: dict[str, Any] = {}
        if expected_version is not None:
            condition += " AND #version = :expected"
            extra = {
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": serialize({":expected": expected_version}),
            }
        with aws_errors(STORE, condition_failed=_missing_or_changed(expected_version)):
            response = self._client.delete_item(
                TableName=self._table,
                Key=serialize(task_item_key(owner, task_id)),
                ConditionExpression=condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        return task_from_item(deserialize(response["Attributes"]))

    def page(
        self, owner: str, query: ListQuery, start: Position | None, limit: int
    ) -> tuple[list[Task], Position | None]:
        """Up to `limit` matching tasks after `start`, and where to resume, or None when nothing more matches.

        The work is bounded: at most LIST_READ_BUDGET items read, in at most LIST_MAX_CALLS Query calls.
        When the budget runs out first, the page is short (even empty) and the resume position is where the
        read stopped, matching or not, so walking the cursors still returns every match exactly once.
        """
        found: list[tuple[Task, Position]] = []
        read = calls = 0

        def page_size(filtered: bool) -> int:
            # Without a filter every item read matches: read what the page lacks, plus one to see past it.
            # With one, DynamoDB's Limit counts items read before filtering: read what the budget allows.
            return LIST_READ_BUDGET - read if filtered else limit + 1 - len(found)

        for page in self.query_pages(owner, query, start, page_size):
            read, calls = read + page.read, calls + 1
            for item in page.items:
                found.append((task_from_item(deserialize(item)), page.position(item)))
                if len(found) > limit:  # one past the page: another page follows
                    return [task for task, _ in found[:limit]], found[limit - 1][1]
            if page.last_key is None:
                break
            if read >= LIST_READ_BUDGET or calls >= LIST_MAX_CALLS:
                return [task for task, _ in found], page.last_key
        return [task for task, _ in found], None

    def query_pages(
        self, owner: str, query: ListQuery, start: Position | None, page_size: Callable[[bool], int]
    ) -> Iterator[QueryPage]:
        """The Query's pages after `start`, one DynamoDB call each, read only as the caller asks for them.

        `page_size(filtered)` gives each call's Limit (items read, before any filter applies).
        """
        query_plan = plan(owner, query)
        key_names = query_plan.key_names
        if start is not None and (set(start) != set(key_names) or start["pk"] != user_key(owner)):
            raise InvalidCursor("the cursor does not belong to this listing")
        request = dict(query_plan.request, TableName=self._table)
        if start is not None:
            request["ExclusiveStartKey"] = serialize(start)
        while True:
            request["Limit"] = max(page_size(query_plan.filtered), 1)
            with aws_errors(STORE):
                response = self._client.query(**request)
            last = response.get("LastEvaluatedKey")
            read = response.get("ScannedCount", len(response["Items"]))
            yield QueryPage(response["Items"], _strings(last) if last else None, read, key_names)
            if not last:
                return
            request["ExclusiveStartKey"] = last


def _items_as_sent(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """A Query page's items as DynamoDB sent them, for botocore to leave alone.

    They are typed JSON (`{"title": {"S": "..."}}`), exactly what botocore's parser would make of them,
    but `json.loads` does in C what that parser does item by item in Python: about a tenth of the CPU
    on an export's pages of a thousand items. botocore parses the rest of the page (keys, counts), then
    puts these items in its result.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes) or not body.startswith(b"{"):
        return
    document = json.loads(body)
    if isinstance(document, dict) and isinstance(document.get("Items"), list):
        customized_response_dict["Items"] = document.pop("Items")
        response_dict["body"] = json.dumps(document).encode()


def _strings(key: dict[str, Any]) -> Position:
    return {name: value["S"] for name, value in key.items()}


def _missing_or_changed(expected_version: int | None) -> Callable[[ClientError], DomainError]:
    """A failed write condition: 404 if the task is missing, 412 if it exists at another version."""

    def meaning(error: ClientError) -> DomainError:
        if "Item" in error.response and expected_version is not None:
            return PreconditionFailed("the task has changed since the version in If-Match")
        return NotFound("task not found")

    return meaning
