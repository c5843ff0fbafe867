"""Which DynamoDB Query serves a listing: the table or an index, its key condition and its filters.

Key conditions (no item read in vain): the owner; status (byStatus); the due-date order with or without a
due range (byDueDate); status in due-date order, with or without a range (byStatusDueDate). Post-filters
(read, then dropped, within the request's read budget): priority, tag, and a due range in the default
createdAt order.
"""

from dataclasses import dataclass
from typing import Any

from core.data.items import serialize, status_key, user_key
from core.domain.listing import ListQuery

STATUS_INDEX = "byStatus"
DUE_DATE_INDEX = "byDueDate"
STATUS_DUE_DATE_INDEX = "byStatusDueDate"
INDEX_KEYS: dict[str | None, tuple[str, ...]] = {
    None: ("pk", "sk"),
    STATUS_INDEX: ("pk", "sk", "gsi1pk", "gsi1sk"),
    DUE_DATE_INDEX: ("pk", "sk", "gsi2pk", "gsi2sk"),
    STATUS_DUE_DATE_INDEX: ("pk", "sk", "gsi1pk", "gsi2sk"),
}


@dataclass(frozen=True)
class QueryPlan:
    index: str | None
    request: dict[str, Any]  # Query arguments without TableName, Limit and ExclusiveStartKey
    filtered: bool

    @property
    def key_names(self) -> tuple[str, ...]:
        """The attributes of a position in this query (a LastEvaluatedKey)."""
        return INDEX_KEYS[self.index]


def plan(owner: str, query: ListQuery) -> QueryPlan:
    owner_key = user_key(owner)
    names: dict[str, str] = {}
    values: dict[str, Any] = {":pk": owner_key}
    filters: list[str] = []

    def add_filter(expression: str, attribute: str, value_name: str, value: Any) -> None:
        names[f"#{attribute}"] = attribute
        values[value_name] = value
        filters.append(expression)

    if query.sort == "dueDate":
        # Due ranges and status are key conditions here: byStatusDueDate is keyed on status then due date.
        index: str | None = STATUS_DUE_DATE_INDEX if query.status else DUE_DATE_INDEX
        key = "gsi1pk = :pk" if query.status else "gsi2pk = :pk"
        if query.status:
            values[":pk"] = status_key(owner, query.status)
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
        forward = True
    else:
        if query.status:
            index = STATUS_INDEX
            key = "gsi1pk = :pk"
            values[":pk"] = status_key(owner, query.status)
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
        "ExpressionAttributeValues": serialize(values),
        "ScanIndexForward": forward,
    }
    if index:
        request["IndexName"] = index
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
        request["ExpressionAttributeNames"] = names
    return QueryPlan(index, request, bool(filters))
