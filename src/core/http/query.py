"""The query string of `GET /tasks` and of the export, parsed into a `ListQuery` (400 on anything unusable)."""

from collections.abc import Mapping

from core.domain import clock
from core.domain.errors import BadRequest
from core.domain.listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS, ListQuery
from core.domain.models import PRIORITIES, STATUSES

LIST_PARAMETERS = ("status", "priority", "tag", "dueBefore", "dueAfter", "sort", "limit", "cursor")


def parse_list_query(params: Mapping[str, str] | None, extra: tuple[str, ...] = ()) -> ListQuery:
    params = dict(params or {})
    unknown = sorted(set(params) - {*LIST_PARAMETERS, *extra})
    if unknown:
        raise BadRequest(f"unknown query parameter: {', '.join(unknown)}")
    return ListQuery(
        status=_choice(params, "status", STATUSES),
        priority=_choice(params, "priority", PRIORITIES),
        tag=_tag(params.get("tag")),
        due_before=_instant(params, "dueBefore"),
        due_after=_instant(params, "dueAfter"),
        sort=_choice(params, "sort", SORTS) or "createdAt",
        limit=_limit(params.get("limit")),
        cursor=params.get("cursor") or None,
    )


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _tag(value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= 50:
        raise BadRequest("tag must be 1 to 50 characters")
    return value


def _instant(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return clock.parse_instant(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time with offset") from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)
