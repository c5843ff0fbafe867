"""Which DynamoDB Query serves a listing: the table or an index, its key condition and its filters.

Key conditions (no item read in vain): the owner; status (byStatus); the due-date order with or without a
due range (byDueDate); status in due-date order, with or without a range (byStatusDueDate). Every other
filter of the field table (`Filter.key_indexes` says which index serves which) is a post-filter: read,
then dropped, within the request's read budget (priority, tag, and a due range in the createdAt order).
"""

from dataclasses import dataclass
from typing import Any

from core.data.items import serialize, status_key, user_key
from core.domain.fields import DUE_DATE_INDEX, STATUS_DUE_DATE_INDEX, STATUS_INDEX, Match
from core.domain.listing import ListQuery
from core.domain.models import LIST_FILTERS

INDEX_KEYS: dict[str | None, tuple[str, ...]] = {
    None: ("pk", "sk"),
    STATUS_INDEX: ("pk", "sk", "gsi1pk", "gsi1sk"),
    DUE_DATE_INDEX: ("pk", "sk", "gsi2pk", "gsi2sk"),
    STATUS_DUE_DATE_INDEX: ("pk", "sk", "gsi1pk", "gsi2sk"),
}
CONDITIONS = {
    Match.EQUALS: "#{name} = :{value}",
    Match.CONTAINS: "contains(#{name}, :{value})",
    Match.BEFORE: "#{name} < :{value}",
    Match.AFTER: "#{name} > :{value}",
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
    status, due_after, due_before = query.get("status"), query.get("dueAfter"), query.get("dueBefore")
    values: dict[str, Any] = {":pk": user_key(owner)}
    if query.sort == "dueDate":
        index: str | None = STATUS_DUE_DATE_INDEX if status else DUE_DATE_INDEX
        key = "gsi1pk = :pk" if status else "gsi2pk = :pk"
        if due_after and due_before:
            key += " AND gsi2sk BETWEEN :dueAfter AND :dueBefore"
        elif due_after:
            key += " AND gsi2sk > :dueAfter"
        elif due_before:
            key += " AND gsi2sk < :dueBefore"
        if due_after:
            values[":dueAfter"] = due_after + "#~"  # "~" sorts after every task id
        if due_before:
            values[":dueBefore"] = due_before
        forward = True
    elif status:
        index, key, forward = STATUS_INDEX, "gsi1pk = :pk", False
    else:
        index, key, forward = None, "pk = :pk AND begins_with(sk, :tasks)", False
        values[":tasks"] = "TASK#"
    if status:
        values[":pk"] = status_key(owner, status)

    names: dict[str, str] = {}
    filters: list[str] = []
    for known in LIST_FILTERS:
        if known.parameter in query and index not in known.filter.key_indexes:
            names[f"#{known.attribute}"] = known.attribute
            values[f":{known.parameter}"] = query.filters[known.parameter]
            filters.append(CONDITIONS[known.filter.match].format(name=known.attribute, value=known.parameter))

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
