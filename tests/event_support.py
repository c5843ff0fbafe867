"""Checking domain events against their published schemas (schemas/events/, made by tools/event_schemas.py)."""

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "events"


@cache
def validator(detail_type: str) -> Draft202012Validator:
    path = SCHEMAS / (detail_type.lower().replace(" ", "-") + ".json")
    return Draft202012Validator(json.loads(path.read_text()), format_checker=FormatChecker())


def schema_errors(event: dict[str, Any]) -> list[str]:
    """Why `event` (as EventBridge delivers it) breaks the schema of its detail type; empty when it does not."""
    return [
        f"{list(error.absolute_path)}: {error.message}" for error in validator(event["detail-type"]).iter_errors(event)
    ]


def as_delivered(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A built event (core.domain.events.DomainEvent's parts) as a consumer receives it, JSON round trip included."""
    return json.loads(json.dumps({"source": "serverless-tasks", "detail-type": detail_type, "detail": detail}))
