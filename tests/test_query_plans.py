"""Which Query serves a listing: the common filters are key conditions, not reads that are thrown away."""

from typing import Any

import pytest

from core.data.queries import INDEX_KEYS, plan
from core.domain.fields import DUE_DATE_INDEX, STATUS_DUE_DATE_INDEX, STATUS_INDEX, ListFilter, Stored, TaskField
from core.domain.models import LIST_FILTERS, TASK_FIELDS
from core.http.query import parse_list_query
from local.template import load_yaml
from tests.task_data import pool


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ({}, None),
        ({"status": "pending"}, STATUS_INDEX),
        ({"sort": "dueDate"}, DUE_DATE_INDEX),
        ({"sort": "dueDate", "dueAfter": "2026-01-01", "dueBefore": "2027-01-01"}, DUE_DATE_INDEX),
        ({"sort": "dueDate", "dueBefore": "2027-01-01"}, DUE_DATE_INDEX),
        ({"sort": "dueDate", "status": "completed"}, STATUS_DUE_DATE_INDEX),
        ({"sort": "dueDate", "status": "pending", "dueAfter": "2026-01-01"}, STATUS_DUE_DATE_INDEX),
    ],
)
def test_common_filters_are_key_conditions(query: dict[str, str], index: str | None) -> None:
    query_plan = plan("alice", parse_list_query(query))

    assert query_plan.index == index
    assert not query_plan.filtered
    assert "FilterExpression" not in query_plan.request


@pytest.mark.parametrize(
    "query",
    [{"priority": "high"}, {"tag": "home"}, {"dueBefore": "2027-01-01"}, {"status": "pending", "tag": "x"}],
)
def test_priority_tag_and_due_ranges_in_created_order_are_post_filters(query: dict[str, str]) -> None:
    assert plan("alice", parse_list_query(query)).filtered


def test_every_index_a_listing_reads_projects_what_its_post_filters_and_readers_read() -> None:
    # GSI projections are a compatibility surface: a post-filter on an attribute the index does not
    # project matches nothing, and a reader misses the field. Every stored attribute must be there.
    table = load_yaml()["Resources"]["TasksTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    stored = {attribute for row in TASK_FIELDS for attribute in row.attributes(_present(row))}

    for name in (index for index in INDEX_KEYS if index is not None):
        post_filtered = {known.attribute for known in LIST_FILTERS if name not in known.filter.key_indexes}

        assert post_filtered <= stored
        covered = projected(indexes[name], INDEX_KEYS[name])
        assert covered is None or stored <= covered, name


def projected(index: dict[str, Any], keys: tuple[str, ...]) -> set[str] | None:
    """The attributes an index holds; None for every one (ProjectionType ALL)."""
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return None
    return set(keys) | set(projection.get("NonKeyAttributes", ()))


@pytest.mark.parametrize("known", LIST_FILTERS, ids=lambda known: known.parameter)
def test_every_filter_is_a_key_condition_or_a_post_filter_in_every_plan(known: ListFilter) -> None:
    value = pool(known.filter.value)[0]
    for sort in ("createdAt", "dueDate"):
        query_plan = plan("alice", parse_list_query({known.parameter: value, "sort": sort}))
        names = query_plan.request.get("ExpressionAttributeNames", {}).values()

        assert (known.attribute in names) == (query_plan.index not in known.filter.key_indexes), sort


def _present(row: TaskField) -> object:
    """A value of the field that is stored (not its absence)."""
    return {Stored.NUMBER: 1, Stored.TEXT_LIST: ["x"], Stored.FLAG: True}.get(row.spec.stored, "2026-01-01")
