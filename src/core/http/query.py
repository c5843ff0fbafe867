"""The query string of `GET /tasks` and of the export, parsed into a `ListQuery` (400 on anything unusable).

Every value is bounded before it is used: a length, a range, text that DynamoDB can store, and a due
range that is not inverted, so no input can reach DynamoDB as a request it would reject.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args, get_origin

from annotated_types import Len, MaxLen, MinLen

from core.domain.errors import BadRequest, InvalidCursor
from core.domain.fields import Check, Match
from core.domain.listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS, ListQuery
from core.domain.models import LIST_FILTERS

LIST_PARAMETERS = (*(known.parameter for known in LIST_FILTERS), "sort", "limit", "cursor")
# A lower and an upper bound on one attribute: an empty range is a 400, not a listing of nothing.
RANGES = [
    (after, before)
    for after in LIST_FILTERS
    for before in LIST_FILTERS
    if after.attribute == before.attribute and (after.filter.match, before.filter.match) == (Match.AFTER, Match.BEFORE)
]
MAX_CURSOR_LENGTH = 2048
MAX_VALUE_LENGTH = 4096  # no parameter needs more; anything longer is refused before it is read


def parse_list_query(params: Mapping[str, str] | None, extra: tuple[str, ...] = ()) -> ListQuery:
    params = dict(params or {})
    unknown = sorted(set(params) - {*LIST_PARAMETERS, *extra})
    if unknown:
        raise BadRequest(f"unknown query parameter: {', '.join(_printable(name) for name in unknown[:5])}")
    for name, value in params.items():
        if len(value) > MAX_VALUE_LENGTH or not is_storable_text(value):
            raise BadRequest(f"{name} is not valid text of at most {MAX_VALUE_LENGTH} characters")
    filters = {}
    for known in LIST_FILTERS:
        if known.parameter in params:
            text = params[known.parameter]
            check_value(known.parameter, known.filter.value, text)
            filters[known.parameter] = known.compared(text)
    for after, before in RANGES:
        low, high = filters.get(after.parameter), filters.get(before.parameter)
        if low is not None and high is not None and low >= high:
            raise BadRequest(f"{after.parameter} must be earlier than {before.parameter} (both bounds are exclusive)")
    return ListQuery(
        filters=filters,
        sort=_choice(params, "sort", SORTS) or "createdAt",
        limit=_limit(params.get("limit")),
        cursor=_cursor(params.get("cursor")),
    )


def check_value(name: str, kind: Any, text: str) -> None:
    """Hold a parameter's text to its declared type: a choice (Literal), or text with length constraints and
    checks (Annotated); pydantic's JSON Schema of the same type documents it (tools/openapi.py)."""
    if get_origin(kind) is Literal:
        if text not in get_args(kind):
            raise BadRequest(f"{name} must be one of: {', '.join(get_args(kind))}")
        return
    if get_origin(kind) is not Annotated:
        raise TypeError(f"{name}: no rule to check a query value of type {kind!r}")
    for rule in kind.__metadata__:
        if isinstance(rule, Len | MinLen | MaxLen):
            low, high = getattr(rule, "min_length", 0), getattr(rule, "max_length", None)
            if len(text) < low or (high is not None and len(text) > high):
                raise BadRequest(f"{name} must be {low} to {high} characters" if high else f"{name} is too short")
        elif isinstance(rule, Check):
            try:
                rule.rule(text)
            except ValueError as error:
                raise BadRequest(f"{name} is not valid: {error}") from None


def is_storable_text(value: str) -> bool:
    """Whether DynamoDB can store `value`: text that encodes as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 3 and 1 <= int(value) <= MAX_LIMIT):
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > MAX_CURSOR_LENGTH or not value.isascii():
        raise InvalidCursor("the cursor is malformed")
    return value


def _printable(name: str) -> str:
    return name[:40].encode("utf-8", "replace").decode("utf-8")
