"""Test data from the field table (`core.domain.models.Task`): strategies for task fields and the listing oracle.

A new field needs nothing here unless its rules go beyond its type's constraints (a `Check`): then its
strategy goes in SPECIAL, and if it filters, a few values in POOLS so that generated tasks and filters meet.
"""

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st

from core.domain import clock
from core.domain.fields import MAX_TAGS, Instant, Tag, Tags, TaskField
from core.domain.models import FIELDS_BY_NAME, LIST_FILTERS, TASK_FIELDS, WRITABLE_FIELDS
from core.http.query import RANGES

ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ids = st.text(alphabet=ID_ALPHABET, min_size=25, max_size=25).map(lambda rest: "0" + rest)
dates = st.dates().map(lambda day: day.isoformat()).filter(lambda text: len(text) == 10)
# Values of the types whose rules are more than their constraints (see `Check` in core.domain.fields).
SPECIAL: dict[Any, st.SearchStrategy[Any]] = {
    Instant: dates,
    Tags: st.lists(st.from_type(Tag), max_size=MAX_TAGS, unique=True),
}
SPECIAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {"taskId": ids}
# A few values per filter value type (and the fields they filter), so that generated tasks and filters meet.
POOLS: dict[Any, list[str]] = {
    Tag: ["home", "work", "later"],
    Instant: ["1999-12-31", "2000-01-01", "2025-01-01", "2030-06-30T12:00:00+02:00"],
}


def values_of(kind: Any) -> st.SearchStrategy[Any]:
    """Any valid value of a field table type."""
    if kind in SPECIAL:
        return SPECIAL[kind]
    if get_origin(kind) in (Union, UnionType):
        return st.one_of(*(values_of(arg) for arg in get_args(kind)))
    if kind is type(None):
        return st.none()
    return st.from_type(kind)


def field_values(row: TaskField) -> st.SearchStrategy[Any]:
    return SPECIAL_FIELDS[row.name] if row.name in SPECIAL_FIELDS else values_of(row.annotation)


def stored_tasks() -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments of any valid `Task`."""
    return st.fixed_dictionaries({row.name: field_values(row) for row in TASK_FIELDS})


def pool(kind: Any) -> list[str]:
    """A few values a filter of this type takes."""
    if get_origin(kind) is Literal:
        return list(get_args(kind))
    return POOLS.get(kind, ["a", "b"])


def _meeting_values(row: TaskField) -> st.SearchStrategy[Any]:
    """Values of a filtered field drawn from its filters' pools, so that filters match some tasks."""
    kind = next(known.filter.value for known in LIST_FILTERS if known.field.name == row.name)
    if kind is Instant:
        one: st.SearchStrategy[Any] = dates
    else:
        one = st.sampled_from(pool(kind))
    if _is_list(row.annotation):
        return st.lists(one, unique=True, max_size=3)
    return st.one_of(st.none(), one) if row.default is None else one


def _is_list(kind: Any) -> bool:
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    return get_origin(kind) is list


def listed_task_fields() -> st.SearchStrategy[dict[str, Any]]:
    """A body of writable fields whose filtered values meet the filters of `list_filters()`."""
    filtered = {known.field.name for known in LIST_FILTERS}
    values = {
        row.name: _meeting_values(row) if row.name in filtered else field_values(row)
        for row in WRITABLE_FIELDS
        if row.name in filtered or row.required
    }
    return st.fixed_dictionaries({**values, "title": st.just("t")})


def list_filters() -> st.SearchStrategy[dict[str, str]]:
    """Query parameters of a listing: any of the table's filters, and a sort."""
    optional = {known.parameter: st.sampled_from(pool(known.filter.value)) for known in LIST_FILTERS}
    return st.fixed_dictionaries({}, optional={**optional, "sort": st.sampled_from(["createdAt", "dueDate"])})


def stored_form(task: dict[str, Any]) -> dict[str, Any]:
    """A task's JSON as its attributes are stored (derived ones too, such as the sortable due date)."""
    item: dict[str, Any] = {}
    for name, value in task.items():
        if name in FIELDS_BY_NAME:
            item.update(FIELDS_BY_NAME[name].attributes(value))
    return item


def matches(task: dict[str, Any], query: dict[str, str]) -> bool:
    """The oracle: whether a task (its JSON) is in a listing, by the field table's filters and the sort."""
    if query.get("sort") == "dueDate" and task["dueDate"] is None:
        return False
    item = stored_form(task)
    return all(known.keeps(item, query[known.parameter]) for known in LIST_FILTERS if known.parameter in query)


def expected(tasks: list[dict[str, Any]], query: dict[str, str]) -> list[str]:
    """The ids a listing returns, in its order: soonest due first, or newest first."""
    chosen = [task for task in tasks if matches(task, query)]
    if query.get("sort") == "dueDate":
        chosen.sort(key=lambda task: (clock.parse_instant(task["dueDate"]), task["taskId"]))
    else:
        chosen.sort(key=lambda task: task["taskId"], reverse=True)
    return [task["taskId"] for task in chosen]


def inverted(query: dict[str, str]) -> bool:
    """Both bounds of a range given, and nothing can be after the lower and before the upper: a 400."""
    return any(
        after.compared(query[after.parameter]) >= before.compared(query[before.parameter])
        for after, before in RANGES
        if after.parameter in query and before.parameter in query
    )
