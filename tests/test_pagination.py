"""Listing: filters, sort order, full pages, and cursors that cannot be forged, reused or swapped."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import tasks as data_tasks
from core.http.bodies import TaskFields
from tests.support import ALICE, BOB, Backend, Invoke
from tests.task_data import expected, inverted, list_filters, listed_task_fields

task_fields = listed_task_fields()
filters = list_filters()


def walk(invoke: Invoke, user: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        response = invoke("list-tasks", user=user, query={**query, **({"cursor": cursor} if cursor else {})})
        assert response.status == 200, response
        page = response.json()
        yield page
        cursor = page["nextCursor"]
        if cursor is None:
            return


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(task_fields, max_size=45), query=filters, limit=st.integers(1, 12))
def test_walking_the_cursors_returns_every_match_once_in_full_pages(
    backend: Backend, invoke: Invoke, fields: list[dict[str, Any]], query: dict[str, str], limit: int
) -> None:
    user = f"user-{uuid.uuid4()}"
    service = backend.services().tasks
    tasks = [service.create(user, TaskFields.model_validate(f).values()).to_json() for f in fields]
    if inverted(query):
        assert invoke("list-tasks", user=user, query={**query, "limit": str(limit)}).status == 400
        return

    pages = list(walk(invoke, user, {**query, "limit": str(limit)}))

    seen = [item["taskId"] for page in pages for item in page["items"]]
    assert seen == expected(tasks, query)
    assert all(len(page["items"]) == limit for page in pages[:-1])
    assert 0 < len(pages[-1]["items"]) <= limit or len(pages) == 1
    assert all(page["nextCursor"] for page in pages[:-1])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(task_fields, max_size=40),
    query=filters.filter(lambda query: not inverted(query)),
    limit=st.integers(1, 8),
    budget=st.integers(1, 6),
)
def test_a_read_budget_bounds_every_request_and_the_walk_still_returns_every_match_once(
    backend: Backend,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    fields: list[dict[str, Any]],
    query: dict[str, str],
    limit: int,
    budget: int,
) -> None:
    # Given a read budget of a few items in one Query call per request
    monkeypatch.setattr(data_tasks, "LIST_READ_BUDGET", budget)
    monkeypatch.setattr(data_tasks, "LIST_MAX_CALLS", 1)
    user = f"user-{uuid.uuid4()}"
    tasks = [
        task.to_json()
        for task in backend.services().tasks.import_tasks(user, (TaskFields.model_validate(f).values() for f in fields))
    ]
    calls: list[int] = []
    backend.dynamodb.meta.events.register("before-call.dynamodb.Query", lambda **_: calls.append(1))

    pages = []
    for page in walk(invoke, user, {**query, "limit": str(limit)}):
        pages.append(page)
        assert len(calls) <= 1, "one Query call per request"
        calls.clear()

    # Then pages may be short or empty, but together they hold every match once, in order
    assert [item["taskId"] for page in pages for item in page["items"]] == expected(tasks, query)
    assert all(len(page["items"]) <= limit for page in pages)
    assert all(page["nextCursor"] for page in pages[:-1])


def test_a_filter_that_matches_nothing_reads_a_bounded_amount(backend: Backend, invoke: Invoke) -> None:
    backend.load_tasks(ALICE, [{"tags": ["common"]}] * 30)
    read: list[int] = []
    backend.dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: read.append(parsed.get("ScannedCount", 0))
    )

    page = invoke("list-tasks", query={"tag": "rare", "limit": "5"}).json()

    assert page == {"items": [], "nextCursor": None}
    assert 0 < sum(read) <= data_tasks.LIST_READ_BUDGET
    assert len(read) <= data_tasks.LIST_MAX_CALLS


def test_default_limit_is_20_and_newest_first(invoke: Invoke, create: Any) -> None:
    ids = [create(title=f"t{i}")["taskId"] for i in range(25)]

    page = invoke("list-tasks", query={}).json()

    assert [item["taskId"] for item in page["items"]] == ids[::-1][:20]
    assert page["nextCursor"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"limit": "\uff19"},  # a full-width digit: isdigit() but not ASCII
        {"status": "done"},
        {"priority": "none"},
        {"sort": "title"},
        {"dueBefore": "yesterday"},
        {"dueAfter": "2026-13-01"},
        {"tag": "x" * 51},
        {"owner": BOB},
    ],
)
def test_bad_query_parameters_are_400(invoke: Invoke, query: dict[str, str]) -> None:
    response = invoke("list-tasks", query=query)

    assert response.status == 400, response
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
def cursor(invoke: Invoke, create: Any) -> str:
    for i in range(3):
        create(title=f"t{i}", status="pending")
    next_cursor: str = invoke("list-tasks", query={"limit": "1", "status": "pending"}).json()["nextCursor"]
    return next_cursor


def test_cursor_continues_for_its_owner_and_filters(invoke: Invoke, cursor: str) -> None:
    response = invoke("list-tasks", query={"limit": "1", "status": "pending", "cursor": cursor})

    assert response.status == 200
    assert len(response.json()["items"]) == 1


def test_cursor_may_change_page_size(invoke: Invoke, cursor: str) -> None:
    response = invoke("list-tasks", query={"limit": "50", "status": "pending", "cursor": cursor})

    assert [response.status, len(response.json()["items"]), response.json()["nextCursor"]] == [200, 2, None]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("AA" if c[-2:] != "AA" else "BB"),
        lambda c: ("B" if c[0] != "B" else "C") + c[1:],
        lambda c: c.split(".")[0],
        lambda c: c + "x",
        lambda c: "garbage",
        lambda c: "...",
        lambda c: "€" * 10,
        lambda c: c * 40,
    ],
)
def test_tampered_or_malformed_cursor_is_400(invoke: Invoke, cursor: str, mangle: Any) -> None:
    response = invoke("list-tasks", query={"limit": "1", "status": "pending", "cursor": mangle(cursor)})

    assert response.status == 400, response


def test_cursor_reused_with_other_filters_is_400(invoke: Invoke, cursor: str) -> None:
    for query in (
        {"status": "completed"},
        {},
        {"status": "pending", "sort": "dueDate"},
        {"status": "pending", "tag": "x"},
    ):
        response = invoke("list-tasks", query={**query, "limit": "1", "cursor": cursor})
        assert response.status == 400, (query, response)


def test_someone_elses_cursor_is_400_and_reveals_nothing(invoke: Invoke, cursor: str) -> None:
    response = invoke("list-tasks", user=BOB, query={"limit": "1", "status": "pending", "cursor": cursor})

    assert response.status == 400
    assert ALICE not in response.text


def test_expired_cursor_is_400(invoke: Invoke, cursor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 2 * 24 * 3600)

    response = invoke("list-tasks", query={"limit": "1", "status": "pending", "cursor": cursor})

    assert response.status == 400
    assert "expired" in response.json()["detail"]
