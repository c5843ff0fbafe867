"""The query string of `GET /tasks` and of the export, parsed into a `ListQuery` (400 on anything unusable).

Every value is bounded before it is used: a length, a range, text that DynamoDB can store, and a due
range that is not inverted, so no input can reach DynamoDB as a request it would reject.
"""

from collections.abc import Mapping

from core.domain import clock
from core.domain.errors import BadRequest, InvalidCursor
from core.domain.listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS, ListQuery
from core.domain.models import PRIORITIES, STATUSES

LIST_PARAMETERS = ("status", "priority", "tag", "dueBefore", "dueAfter", "sort", "limit", "cursor")
MAX_TAG_LENGTH = 50
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
    due_before, due_after = _instant(params, "dueBefore"), _instant(params, "dueAfter")
    if due_before is not None and due_after is not None and due_after >= due_before:
        raise BadRequest("dueAfter must be earlier than dueBefore (both bounds are exclusive)")
    return ListQuery(
        status=_choice(params, "status", STATUSES),
        priority=_choice(params, "priority", PRIORITIES),
        tag=_tag(params.get("tag")),
        due_before=due_before,
        due_after=due_after,
        sort=_choice(params, "sort", SORTS) or "createdAt",
        limit=_limit(params.get("limit")),
        cursor=_cursor(params.get("cursor")),
    )


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


def _tag(value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= MAX_TAG_LENGTH:
        raise BadRequest(f"tag must be 1 to {MAX_TAG_LENGTH} characters")
    return value


def _instant(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return clock.parse_instant(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time with offset, years 1 to 9999") from None


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
