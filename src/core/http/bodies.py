"""Request bodies (pydantic, strict JSON): what a caller may write to a task.

The task models derive from the field table (`core.domain.models.Task`). Imported only by the routes
that read a body, so a GET does not pay for pydantic at cold start.
"""

import dataclasses
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from core.domain.errors import FieldError, InvalidInput, MalformedBody
from core.domain.fields import Check, Strip, TaskField
from core.domain.models import READ_ONLY_FIELDS, WRITABLE_FIELDS


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WritableFields(_Body):
    def values(self) -> dict[str, Any]:
        return self.model_dump()


class FieldChanges(_Body):
    def as_changes(self) -> dict[str, Any]:
        """The fields present; null (allowed only for an optional field) puts back its default."""
        changes = {}
        for row in WRITABLE_FIELDS:
            if row.name in self.model_fields_set:
                value = getattr(self, row.name)
                changes[row.name] = row.default_value() if value is None else value
        return changes


def pydantic_type(kind: Any) -> Any:
    """A field table type as pydantic validates it: `Strip` and `Check` become its own validators."""
    origin = get_origin(kind)
    if origin is Annotated:
        base, *rules = get_args(kind)
        converted = [_rule(rule) for rule in rules]
        return Annotated[(pydantic_type(base), *converted)]
    if origin in (Union, UnionType):
        return Union[tuple(pydantic_type(arg) for arg in get_args(kind))]  # noqa: UP007
    if origin is list:
        return list[pydantic_type(get_args(kind)[0])]  # type: ignore[misc]
    return kind


def _rule(rule: Any) -> Any:
    if isinstance(rule, Strip):
        return StringConstraints(strip_whitespace=True)
    if isinstance(rule, Check):
        check = rule.rule

        def holds(value: Any) -> Any:
            check(value)
            return value

        return AfterValidator(holds)
    return rule


def _whole(row: TaskField) -> tuple[Any, Any]:
    described = row.spec.description or None
    if row.required:
        return pydantic_type(row.annotation), Field(..., description=described)
    if row.default_factory is not dataclasses.MISSING:
        return pydantic_type(row.annotation), Field(default_factory=row.default_factory, description=described)
    return pydantic_type(row.annotation), Field(default=row.default, description=described)


def _change(row: TaskField) -> tuple[Any, Any]:
    described = f"{row.spec.description} " if row.spec.description else ""
    if row.required:  # present, it must hold a value: it cannot be cleared
        described += "Required: it cannot be cleared (null is refused)."
        return pydantic_type(row.annotation), Field(None, description=described, json_schema_extra=_no_default)
    described += "null clears it." if row.spec.null_clears else f"null puts back its default ({row.default_value()!r})."
    annotation = pydantic_type(row.annotation) | None
    return annotation, Field(None, description=described, json_schema_extra=_no_default)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a patch's absent field is left as it is, not set to anything


TaskFields: type[WritableFields] = create_model(
    "TaskFields",
    __base__=WritableFields,
    __doc__="Every writable field: the body of POST and PUT (absent optional fields take defaults).",
    **{row.name: _whole(row) for row in WRITABLE_FIELDS},  # type: ignore[call-overload]
)
TaskPatch: type[FieldChanges] = create_model(
    "TaskPatch",
    __base__=FieldChanges,
    __doc__="A JSON merge patch: a field present is set, null resets an optional field to its default.",
    **{row.name: _change(row) for row in WRITABLE_FIELDS},  # type: ignore[call-overload]
)


def parse_body[M: _Body](model: type[M], raw: str) -> M:
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedBody("the body is not valid JSON") from None
        raise InvalidInput([_field_error(error) for error in exc.errors()]) from None
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


def _integral(value: Any) -> Any:
    """A JSON integer written with a fraction of zero (529.0, an integer to JSON Schema) as an int."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class AttachmentRequest(_Body):
    """`POST /tasks/{taskId}/attachments`: what the client is about to upload."""

    fileName: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    contentType: Annotated[str, StringConstraints(min_length=3, max_length=127)]
    size: Annotated[int, Field(gt=0), BeforeValidator(_integral)]
