"""Timestamps in one format: ISO 8601 UTC with microseconds, fixed width, so they sort as strings."""

from datetime import UTC, date, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    return datetime.now(UTC).strftime(_FORMAT)


def parse_instant(text: str) -> str:
    """Turn an ISO 8601 date or date-time with offset into the sortable UTC form.

    A date on its own stands for the start of that day in UTC.
    Raises ValueError for anything else (callers turn it into a field error).
    """
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).strftime(_FORMAT)
    if "T" not in text and "t" not in text:
        raise ValueError("expected an ISO 8601 date or date-time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset, e.g. 2026-01-31T17:00:00Z")
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(_FORMAT)
