"""The stack's domain-event bus, locally: what the functions put on it is printed as it passes and delivered
to the template's rules on that bus.

The bus itself is moto's (made from the template's `AWS::Events::EventBus`), so a function's PutEvents is
authorized with its role and answered as EventBridge answers it. This module watches the AWS stand-in's
requests (a `MotoServer` observer, as local/notifications.py watches S3): each entry moto accepted for the
bus becomes the event EventBridge would deliver, written to `log` on one line, kept in `published`, and
handed to a local/notifications.py `EventBus` holding the rules whose `EventBusName` is this bus, so their
functions get it with the same retries and dead-letter queues as S3's upload events.
"""

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from werkzeug.wrappers import Request, Response

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.notifications import EventBus

PUT_EVENTS = "AWSEvents.PutEvents"


def bus_arn(name: str) -> str:
    return f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:event-bus/{name}"


class BusTap:
    """A `MotoServer` observer of one bus: prints, keeps and routes every event put on it."""

    def __init__(self, bus_name: str, rules: EventBus, log: TextIO | None = None):
        self.bus_name = bus_name
        self.rules = rules
        self.log = log
        self.published: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def observe(self, request: Request, response: Response) -> None:
        if request.headers.get("X-Amz-Target") != PUT_EVENTS or response.status_code != 200:
            return
        entries = json.loads(request.get_data() or b"{}").get("Entries", [])
        results = json.loads(response.get_data() or b"{}").get("Entries", [])
        for entry, result in zip(entries, results, strict=False):
            if "EventId" in result and self._on_this_bus(entry):
                self._pass(envelope(entry, result["EventId"]))

    def _on_this_bus(self, entry: Mapping[str, Any]) -> bool:
        name = str(entry.get("EventBusName") or "default")
        return name in (self.bus_name, bus_arn(self.bus_name))

    def _pass(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.published.append(event)
        if self.log is not None:
            detail = event["detail"]
            text = json.dumps(detail, separators=(",", ":"))
            print(f"[event bus] {event['detail-type']} {detail.get('eventId', '')} {text}", file=self.log, flush=True)
        self.rules.publish(lambda: event)

    def drain(self, timeout: float = 30) -> None:
        """Return once the rules' deliveries of every event so far are done."""
        self.rules.drain(timeout)


def envelope(entry: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """The event EventBridge delivers for an accepted PutEvents entry."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": LOCAL_REGION,
        "resources": list(entry.get("Resources") or []),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }
