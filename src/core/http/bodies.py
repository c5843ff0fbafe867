"""Request bodies (pydantic, strict JSON): what a caller may write to a task.

Imported only by the routes that read a body, so a GET does not pay for pydantic at cold start.
"""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.domain import clock
from core.domain.errors import FieldError, InvalidInput, MalformedBody
from core.domain.models import DEFAULTS, READ_ONLY_FIELDS, Priority, Status


def _valid_due_date(value: str) -> str:
    clock.parse_instant(value)
    return value


def _unique(tags: list[str]) -> list[str]:
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be unique")
    return tags


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
DueDate = Annotated[str, AfterValidator(_valid_due_date)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TaskFields(_Body):
    """Every writable field: the body of POST and PUT (absent optional fields take defaults)."""

    title: Title
    description: Description = ""
    status: Status = "pending"
    priority: Priority = "medium"
    dueDate: DueDate | None = None
    tags: Tags = Field(default_factory=list)

    def values(self) -> dict[str, Any]:
        return self.model_dump()


class TaskPatch(_Body):
    """A JSON merge patch: a field present is set, null resets an optional field to its default."""

    title: Title | None = None
    description: Description | None = None
    status: Status | None = None
    priority: Priority | None = None
    dueDate: DueDate | None = None
    tags: Tags | None = None

    def as_changes(self) -> dict[str, Any]:
        changes = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            changes[name] = DEFAULTS[name] if value is None else value
        return changes


def parse_body[M: _Body](model: type[M], raw: str) -> M:
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedBody("the body is not valid JSON") from None
        raise InvalidInput([_field_error(error) for error in exc.errors()]) from None
    if isinstance(parsed, TaskPatch) and parsed.title is None and "title" in parsed.model_fields_set:
        raise InvalidInput([FieldError("title", "title is required and cannot be cleared")])
    return parsed


def _field_error(error: Any) -> FieldError:
    location = ".".join(str(part) for part in error["loc"]) or "(body)"
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        kind = "read-only" if name in READ_ONLY_FIELDS else "unknown"
        return FieldError(location, f"{kind} field")
    if error["type"] == "model_type":
        return FieldError(location, "the body must be a JSON object")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return FieldError(location, message)


class AttachmentRequest(_Body):
    """`POST /tasks/{taskId}/attachments`: what the client is about to upload."""

    fileName: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    contentType: Annotated[str, StringConstraints(min_length=3, max_length=127)]
    size: Annotated[int, Field(gt=0)]
