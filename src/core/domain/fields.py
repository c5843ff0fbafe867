"""How a task field is declared: its rules, its place in the DynamoDB item, and the filters it serves.

The fields themselves are declared once, in `core.domain.models.Task` (the field table): each with its type
(constraints as `Annotated` metadata of `annotated_types`, which pydantic reads, so no pydantic at import
time), its default, and a `FieldSpec` saying whether callers may write it, whether `null` clears it, how it
is stored and how it filters a listing. Request bodies, item mapping, updates, query parsing, post-filters,
the cursor fingerprint and the OpenAPI document all read that table.
"""

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from annotated_types import Len, MaxLen

from core.domain import clock

MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_TAGS = 20
MAX_TAG_LENGTH = 50

# The table's secondary indexes a listing reads (template.yaml declares them; core.data.queries keys them).
STATUS_INDEX = "byStatus"
DUE_DATE_INDEX = "byDueDate"
STATUS_DUE_DATE_INDEX = "byStatusDueDate"

INSTANT_RULE = "an ISO 8601 date (YYYY-MM-DD) or date-time with a UTC offset, within the years 1 to 9999 in UTC"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: its mappings are not hashable
class JsonSchema:
    """What a `Check` stands for in JSON Schema, merged into the schema pydantic generates for the type.

    `on_input` applies to what a caller sends only: a stored value may predate the rule or take a form the
    check accepts but the schema cannot spell (an ISO 8601 week date, say).
    """

    extra: Mapping[str, Any]
    on_input: Mapping[str, Any] | None = None

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = {**handler(core_schema), **self.extra}
        if self.on_input and handler.mode == "validation":
            schema.update(self.on_input)
        return schema


@dataclass(frozen=True)
class Check:
    """A rule beyond the type's constraints: `rule(value)` raises ValueError with the message a caller sees."""

    rule: Callable[[Any], object]


@dataclass(frozen=True)
class Strip:
    """Surrounding whitespace is dropped before the value is checked and stored."""


def _unique(items: list[str]) -> None:
    if len(set(items)) != len(items):
        raise ValueError("tags must be unique")


def _instant(text: str) -> None:
    clock.parse_instant(text)


# A pattern as strict as `clock.parse_instant` on the shape; the calendar itself is the formats' and the check's.
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_TIME = _DATE + r"T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})"

Status = Literal["pending", "in_progress", "completed", "cancelled"]
Priority = Literal["low", "medium", "high", "urgent"]
STATUSES: tuple[str, ...] = get_args(Status)
PRIORITIES: tuple[str, ...] = get_args(Priority)
Title = Annotated[str, Strip(), Len(1, MAX_TITLE_LENGTH)]
Description = Annotated[str, MaxLen(MAX_DESCRIPTION_LENGTH)]
Tag = Annotated[str, Len(1, MAX_TAG_LENGTH)]
Tags = Annotated[list[Tag], MaxLen(MAX_TAGS), Check(_unique), JsonSchema({"uniqueItems": True})]
Instant = Annotated[
    str,
    MaxLen(clock.MAX_INSTANT_LENGTH),
    Check(_instant),
    JsonSchema(
        {"description": f"{INSTANT_RULE[0].upper()}{INSTANT_RULE[1:]}."},
        on_input={
            "anyOf": [
                {"format": "date", "pattern": f"^{_DATE}$"},
                {"format": "date-time", "pattern": f"^{_DATE_TIME}$"},
            ]
        },
    ),
]


class Stored(StrEnum):
    """How a value is typed in the DynamoDB item."""

    TEXT = "S"
    NUMBER = "N"
    TEXT_LIST = "L"
    FLAG = "BOOL"


class Match(StrEnum):
    """How a filter compares its value with the stored attribute."""

    EQUALS = "="
    CONTAINS = "contains"
    BEFORE = "<"
    AFTER = ">"

    def holds(self, stored: Any, value: Any) -> bool:
        """Whether a task whose attribute holds `stored` (None: absent) passes the filter."""
        if stored is None:
            return False
        match self:
            case Match.EQUALS:
                return bool(stored == value)
            case Match.CONTAINS:
                return value in stored
            case Match.BEFORE:
                return bool(stored < value)
            case Match.AFTER:
                return bool(stored > value)


@dataclass(frozen=True)
class Filter:
    """A query parameter of `GET /tasks` and the export that keeps only the tasks whose field matches it.

    `key_indexes`: the indexes whose key condition serves it; on any other read it is a post-filter, so
    every index a listing reads must project `attribute` (template.yaml; tests/test_query_plans.py).
    """

    parameter: str
    value: Any  # the parameter's type (Annotated constraints), which its text must satisfy
    match: Match
    description: str
    attribute: str = ""  # the item attribute compared; "" for the field's own
    key_indexes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Derived:
    """Another item attribute stored from a field's value, such as the sortable form of a date."""

    attribute: str
    value: Callable[[Any], Any]


@dataclass(frozen=True)
class FieldSpec:
    """What the field table says of a field beyond its type and default (see `task_field`)."""

    writable: bool = True
    public: bool = True  # in the task's JSON
    null_clears: bool = False  # `null` in a merge patch removes the attribute (the default is None)
    stored: Stored = Stored.TEXT
    attribute: str = ""  # the item attribute; "" for the field's name
    derived: tuple[Derived, ...] = ()
    filters: tuple[Filter, ...] = ()
    description: str = ""


SPEC = "task-field"


def task_field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A field of the table: its `default` (or `default_factory`; neither: required) and its `FieldSpec`."""
    declared = FieldSpec(**spec)
    if declared.writable and declared.null_clears != (default is None and default_factory is None):
        raise TypeError("a writable field is cleared by null (null_clears=True) exactly when its default is None")
    metadata = {SPEC: declared}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata, kw_only=True)
    return field(default=default, metadata=metadata, kw_only=True)


@dataclass(frozen=True)
class TaskField:
    """One row of the field table, as the layers that derive from it read it."""

    name: str
    annotation: Any
    spec: FieldSpec
    default: Any = MISSING
    default_factory: Any = MISSING

    @classmethod
    def of(cls, declared: "Field[Any]") -> "TaskField":
        return cls(declared.name, declared.type, declared.metadata[SPEC], declared.default, declared.default_factory)

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING

    def default_value(self) -> Any:
        return self.default_factory() if self.default_factory is not MISSING else self.default

    @property
    def attribute(self) -> str:
        return self.spec.attribute or self.name

    def attributes(self, value: Any) -> dict[str, Any]:
        """The item attributes the value is stored as (None: the attribute is absent)."""
        if self.spec.stored is Stored.FLAG and not value:
            value = None  # a flag is stored only while it is set
        stored = {self.attribute: value}
        for derived in self.spec.derived:
            stored[derived.attribute] = None if value is None else derived.value(value)
        return stored


@dataclass(frozen=True)
class ListFilter:
    """A filter of the table with the field it reads."""

    field: TaskField
    filter: Filter

    @property
    def parameter(self) -> str:
        return self.filter.parameter

    @property
    def attribute(self) -> str:
        return self.filter.attribute or self.field.attribute

    def compared(self, value: str) -> Any:
        """The parameter's value in the form the attribute is stored in (a date as a sortable instant)."""
        for derived in self.field.spec.derived:
            if derived.attribute == self.attribute:
                return derived.value(value)
        return value

    def keeps(self, item: Mapping[str, Any], value: str) -> bool:
        """Whether a task stored as `item` (plain values) passes the filter with the parameter's `value`."""
        return self.filter.match.holds(item.get(self.attribute), self.compared(value))


def table(model: type) -> tuple[TaskField, ...]:
    return tuple(TaskField.of(declared) for declared in fields(model) if SPEC in declared.metadata)


def list_filters(rows: tuple[TaskField, ...]) -> tuple[ListFilter, ...]:
    return tuple(ListFilter(row, declared) for row in rows for declared in row.spec.filters)
