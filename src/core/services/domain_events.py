"""Publishing the domain events of a batch of stream records, in their order."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.data.event_bus import EventBus
from core.data.stream_changes import stream_event
from core.domain.errors import EventsNotPublished
from core.domain.events import DomainEvent


@dataclass(frozen=True)
class Outcome:
    published: list[DomainEvent]  # what is on the bus now
    first_failed: int | None  # index of the first record whose event is not: retry from there (None: all are)
    reason: str = ""


class EventPublisher:
    def __init__(self, bus: EventBus):
        self._bus = bus

    def publish(self, records: Sequence[Mapping[str, Any]]) -> Outcome:
        """Put the events of `records` on the bus, in order, up to the first record that cannot be read or
        published. Records after that one are left for the retry (their events may be on the bus already:
        sent again, they carry the same `eventId`)."""
        events: list[DomainEvent] = []
        sources: list[int] = []  # the record each event comes from
        unreadable: int | None = None
        reason = ""
        for index, record in enumerate(records):
            try:
                event = stream_event(record)
            except (KeyError, TypeError, ValueError) as error:
                unreadable, reason = index, f"unreadable record: {error!r}"
                break
            if event is not None:
                events.append(event)
                sources.append(index)
        try:
            self._bus.publish(events)
        except EventsNotPublished as error:
            return Outcome(events[: error.published], sources[error.published], str(error))
        return Outcome(events, unreadable, reason)
