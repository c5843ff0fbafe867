"""Timestamps in one format: ISO 8601 UTC with microseconds, fixed width, so they sort as strings."""

import time
from datetime import UTC, date, datetime

MAX_INSTANT_LENGTH = 64  # longer than any ISO 8601 date-time with offset and fraction


def utc_now() -> str:
    return _format(datetime.now(UTC))


def epoch_seconds() -> float:
    """Now, in seconds since the epoch: what upload windows are measured in (services take it injectable)."""
    return time.time()


def parse_instant(text: str) -> str:
    """Turn an ISO 8601 date or date-time with offset into the sortable UTC form.

    A date on its own stands for the start of that day in UTC. Raises ValueError for anything else,
    including a moment whose conversion to UTC leaves the calendar (years 1 to 9999); callers turn it
    into a field error.
    """
    if len(text) > MAX_INSTANT_LENGTH or not text.isascii():
        raise ValueError("expected an ISO 8601 date or date-time")
    try:
        if len(text) == 10:
            return _format(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC))
        if "T" not in text and "t" not in text:
            raise ValueError("expected an ISO 8601 date or date-time")
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("a date-time needs a UTC offset, e.g. 2026-01-31T17:00:00Z")
        return _format(moment.astimezone(UTC))
    except OverflowError:
        raise ValueError("the moment is outside the years 1 to 9999 in UTC") from None


def from_epoch(seconds: float) -> str:
    return _format(datetime.fromtimestamp(seconds, UTC))


def to_epoch(instant: str) -> float:
    """The seconds since the epoch of an instant in this module's format (the inverse of `from_epoch`)."""
    return datetime.fromisoformat(instant).timestamp()


def _format(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )
