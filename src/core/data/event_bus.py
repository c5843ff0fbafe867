"""Publishing domain events to the stack's EventBridge bus: the only code that calls PutEvents."""

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from core.data.aws_errors import aws_errors
from core.domain.errors import EventsNotPublished, ServiceUnavailable
from core.domain.events import SOURCE, DomainEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef as Entry

BUS = "event bus"
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries a call ...
MAX_REQUEST_BYTES = 256 * 1024  # ... and at most 256 KiB of them (EventBridge's entry size, summed)
PUT_ATTEMPTS = 3  # each call retries the entries the bus refused, as AWS advises


class EventBus:
    def __init__(self, client: "EventBridgeClient", bus_name: str):
        self._client = client
        self._bus = bus_name

    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Put `events` on the bus in their order, in as few calls as EventBridge's limits allow.

        Raises EventsNotPublished (a ServiceUnavailable) naming how many leading events are known to be
        on the bus when some are still refused after PUT_ATTEMPTS; a later one may be there too (a retry
        then sends it twice, with the same `eventId`).
        """
        published = 0
        for chunk in _chunks([entry(event, self._bus) for event in events]):
            self._put(chunk, published)
            published += len(chunk)

    def _put(self, entries: "list[Entry]", published: int) -> None:
        pending = list(range(len(entries)))
        for _ in range(PUT_ATTEMPTS):
            try:
                with aws_errors(BUS):
                    response = self._client.put_events(Entries=[entries[i] for i in pending])
            except ServiceUnavailable as exc:
                raise EventsNotPublished(str(exc), published + pending[0]) from exc
            results = response.get("Entries", [])
            pending = [i for i, result in zip(pending, results, strict=True) if "ErrorCode" in result]
            if not pending:
                return
        raise EventsNotPublished(f"the {BUS} refused events; retry shortly", published + pending[0])


def entry(event: DomainEvent, bus_name: str) -> "Entry":
    """The PutEvents entry of one event."""
    return {
        "Source": SOURCE,
        "DetailType": event.detail_type,
        "Detail": json.dumps(event.detail, ensure_ascii=False, separators=(",", ":")),
        "EventBusName": bus_name,
    }


def entry_size(item: "Entry") -> int:
    """An entry's size as EventBridge counts it (its documented calculation: text fields in UTF-8, 14 for Time)."""
    return 14 + len(item["Source"].encode()) + len(item["DetailType"].encode()) + len(item["Detail"].encode())


def _chunks(entries: "list[Entry]") -> "Iterator[list[Entry]]":
    chunk: list[Entry] = []
    size = 0
    for item in entries:
        item_size = entry_size(item)
        if chunk and (len(chunk) == MAX_ENTRIES or size + item_size > MAX_REQUEST_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
