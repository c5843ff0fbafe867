"""Generate `schemas/events/*.json` (JSON Schema draft 2020-12), one per domain-event detail type, from the
code: never edited by hand.

Each schema describes the event as EventBridge delivers it to a consumer (`source`, `detail-type`, `detail`
and EventBridge's own fields). The `detail` layout is core.domain.events'; its `task` is the task exactly as
the API returns it and its `attachment` the attachment record (tools/openapi.py, from the field table), so
an event and a GET never disagree.

Usage: python tools/event_schemas.py            (what `make event-schemas` runs)
       python tools/event_schemas.py --check    (exit 1 when the committed files are not what the code makes)
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.domain.events import (
    ATTACHMENT_AVAILABLE,
    ATTACHMENT_DELETED,
    DETAIL_TYPES,
    SOURCE,
    TASK_COMPLETED,
    TASK_CREATED,
    TASK_DELETED,
    TASK_UPDATED,
)
from core.domain.models import ATTACHMENT_FIELDS, PUBLIC_FIELDS
from tools.openapi import attachment_schema, task_schema

REPO_ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = REPO_ROOT / "schemas" / "events"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
INSTANT = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$",
    "description": "RFC 3339, UTC, microseconds.",
}
_STRING = {"type": "string", "minLength": 1}
_NULL = {"type": "null"}

ABOUT = {
    TASK_CREATED: "A task was created. `task` is its first version; `changedFields` names every public field.",
    TASK_UPDATED: "A task changed (not to completed). `task` is the new version; `changedFields` what differs "
    "from the previous one (`version` and `updatedAt` always do, and are not listed).",
    TASK_COMPLETED: "A task's status became completed. As Task Updated otherwise: one event per version, so a "
    "consumer of every change subscribes to both.",
    TASK_DELETED: "A task was deleted. `version` is its last version plus one; `task` is null.",
    ATTACHMENT_AVAILABLE: "An attachment's upload landed: it can be downloaded. `version` is 1.",
    ATTACHMENT_DELETED: "An available attachment was deleted (on its own or with its task). `version` is 2.",
}


def file_name(detail_type: str) -> str:
    return detail_type.lower().replace(" ", "-") + ".json"


def build() -> dict[str, dict[str, Any]]:
    """Every schema, by file name."""
    return {file_name(detail_type): event_schema(detail_type) for detail_type in DETAIL_TYPES}


def event_schema(detail_type: str) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": f"https://serverless-tasks.local/schemas/events/{file_name(detail_type)}",
        "title": detail_type,
        "description": ABOUT[detail_type],
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "version": {"const": "0"},
            "id": {"type": "string", "description": "EventBridge's id: differs between two puts of one change."},
            "source": {"const": SOURCE},
            "detail-type": {"const": detail_type},
            "account": {"type": "string"},
            "time": {"type": "string"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "detail": detail_schema(detail_type),
        },
    }


def detail_schema(detail_type: str) -> dict[str, Any]:
    attachment = detail_type.startswith("Attachment")
    names = list(ATTACHMENT_FIELDS) if attachment else [row.name for row in PUBLIC_FIELDS]
    properties: dict[str, Any] = {
        "eventId": {
            "type": "string",
            "pattern": r"^[^:]+:[^:]+:[12]$" if attachment else r"^[^:]+:[1-9][0-9]*$",
            "description": "Stable: the same change always has the same id. "
            + ("<taskId>:<attachmentId>:<version>" if attachment else "<taskId>:<version>")
            + ". Drop an event whose id you have seen.",
        },
        "owner": {**_STRING, "description": "The task's owner (the `sub` of the token that created it)."},
        "taskId": _STRING,
        "version": {"type": "integer", "minimum": 1, "description": "Orders the events of one task (or attachment)."},
        "occurredAt": INSTANT,
        "changedFields": {"type": "array", "uniqueItems": True, "items": {"enum": names}},
        "task": _NULL,
    }
    if detail_type in (TASK_CREATED, TASK_UPDATED, TASK_COMPLETED):
        properties["task"] = task_schema()
    if detail_type == TASK_COMPLETED:
        properties["task"] = _with(properties["task"], "status", {"const": "completed"})
    if detail_type in (TASK_DELETED, ATTACHMENT_DELETED):
        properties["changedFields"]["maxItems"] = 0
    if attachment:
        properties["version"] = {"const": 1 if detail_type == ATTACHMENT_AVAILABLE else 2}
        properties["attachmentId"] = _STRING
        properties["attachment"] = _with(attachment_schema(), "status", {"const": "available"})
    return {"type": "object", "required": list(properties), "additionalProperties": False, "properties": properties}


def _with(schema: dict[str, Any], name: str, rule: dict[str, Any]) -> dict[str, Any]:
    """`schema` whose property `name` must also satisfy `rule`."""
    copy = json.loads(json.dumps(schema))
    copy["properties"][name] = {"allOf": [copy["properties"][name], rule]}
    return copy


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    wanted = {name: render(schema) for name, schema in build().items()}
    if args.check:
        present = {path.name: path.read_text() for path in DIRECTORY.glob("*.json")}
        if present != wanted:
            print(f"{DIRECTORY} is not what the code generates: run `make event-schemas`", file=sys.stderr)
            return 1
        return 0
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for path in DIRECTORY.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        (DIRECTORY / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
