"""How an export body is laid out: NDJSON lines (the default) or one streamed JSON document.

- NDJSON: one task per line, then `{"_end": {"count": N, "nextCursor": ...}}`, or
  `{"_error": {problem}}` after a failure.
- JSON (`?format=json`): `{"tasks": [...], "count": N, "nextCursor": ...}`, or after a failure
  `{"tasks": [...], "_error": {problem}}`: still one valid document, with no `count`. Either way a
  client that finds no `_end` / `count` knows the export is incomplete.
"""

import json
from collections.abc import Mapping
from typing import Any, Protocol


class Framing(Protocol):
    media_type: str
    opening: bytes

    def item(self, task: bytes, index: int) -> bytes: ...
    def end(self, count: int, next_cursor: str | None) -> bytes: ...
    def error(self, problem: Mapping[str, Any]) -> bytes: ...


class NdjsonFraming:
    media_type = "application/x-ndjson"
    opening = b""

    def item(self, task: bytes, index: int) -> bytes:
        return task + b"\n"

    def end(self, count: int, next_cursor: str | None) -> bytes:
        return dumps({"_end": {"count": count, "nextCursor": next_cursor}}) + b"\n"

    def error(self, problem: Mapping[str, Any]) -> bytes:
        return dumps({"_error": problem}) + b"\n"


class JsonFraming:
    media_type = "application/json"
    opening = b'{"tasks":['

    def item(self, task: bytes, index: int) -> bytes:
        return task if index == 0 else b"," + task

    def end(self, count: int, next_cursor: str | None) -> bytes:
        return b'],"count":%d,"nextCursor":%b}\n' % (count, dumps(next_cursor))

    def error(self, problem: Mapping[str, Any]) -> bytes:
        return b'],"_error":%b}\n' % dumps(problem)


FRAMINGS: dict[str, Framing] = {"ndjson": NdjsonFraming(), "json": JsonFraming()}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
