"""Which Query serves a listing: the common filters are key conditions, not reads that are thrown away."""

import pytest

from core.data.queries import DUE_DATE_INDEX, STATUS_DUE_DATE_INDEX, STATUS_INDEX, plan
from core.http.query import parse_list_query


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
