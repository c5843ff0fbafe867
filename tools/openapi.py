"""Generate `openapi.json` (OpenAPI 3.1) from the code: never edited by hand.

Sources: the CRUD function's route table (`tasks.app.operations()`, each route function's docstring as
its summary), the field table (`core.domain.models.Task`): the request body models derived from it
(`core.http.bodies`), its filters as query parameters and the task schema; the listing's own parameters
(`core.http.query`, `core.domain.listing`), the response shapes (`core.domain.models`,
`core.http.representations`), the problem types (`core.http.problems`), the export app's routes and
framings (`streaming.app`, `streaming.framing`) and the local stack's default ports and stage.

Usage: python tools/openapi.py [openapi.json]    (what `make openapi` runs)
       python tools/openapi.py --check           (exit 1 when the committed file is not what the code makes)
"""

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from core.domain.listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS
from core.domain.models import ATTACHMENT_FIELDS, LIST_FILTERS, PUBLIC_FIELDS, Attachment
from core.http import problems
from core.http.bodies import AttachmentRequest, TaskFields, TaskPatch, pydantic_type
from core.http.query import LIST_PARAMETERS, MAX_CURSOR_LENGTH, RANGES
from core.http.representations import DownloadGrant, UploadGrant
from core.services.attachments import UPLOAD_URL_SECONDS
from local import specs
from local.stack import StackOptions
from local.template import Template
from streaming import app as export_app
from streaming.framing import FRAMINGS
from tasks import app as crud_app
from tasks.idempotency import KEY_FORMAT

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = REPO_ROOT / "openapi.json"
PROBLEM = problems.PROBLEM_CONTENT_TYPE
SCHEMAS = "#/components/schemas/"

# The error statuses each operation can answer with, beyond 401 and 503 that every authenticated one can.
ERRORS: dict[str, tuple[int, ...]] = {
    "createTask": (400, 409, 413, 415, 422),
    "listTasks": (400,),
    "getTask": (404,),
    "patchTask": (400, 404, 412, 413, 415, 422),
    "replaceTask": (400, 404, 412, 413, 415, 422),
    "deleteTask": (404, 412),
    "createAttachment": (400, 404, 409, 410, 413, 415, 422),
    "listAttachments": (404,),
    "getAttachment": (404,),
    "deleteAttachment": (404,),
    "exportTasks": (400,),
}
USABLE_FILE_NAME = r"\w[^/\\]*$"  # core.services.attachments.clean_file_name leaves something of it
IDEMPOTENT_CREATES = ("createTask", "createAttachment")
CONDITIONAL_WRITES = ("patchTask", "replaceTask", "deleteTask")
REPLAYED_GRANTS = {
    "createAttachment": (
        " A retry of a grant never gets an upload that can no longer happen: while the first upload window "
        f"({UPLOAD_URL_SECONDS // 60} minutes) is open and the attachment pending, it gets the first response; after "
        "that window, while the attachment is still pending and holds its slot, a 201 with the same attachment and a "
        "fresh presigned POST (a new window); once the attachment is uploaded, deleted or forgotten (its window "
        "closed and a grant at the limit took its slot back), a 410 problem."
    )
}
WRITES_WITH_BODY = {"createTask": "TaskFields", "replaceTask": "TaskFields", "patchTask": "TaskPatch"}
BODY_MEDIA_TYPES = {"patchTask": ("application/merge-patch+json", "application/json")}


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, function in crud_app.operations():
        paths.setdefault(path, {})[method.lower()] = crud_operation(_operation_id(function), function)
    export_server = export_servers()
    paths[export_app.EXPORT_PATH] = {"servers": export_server, "get": export_operation()}
    paths[export_app.HEALTH_PATH] = {"servers": export_server, "get": health_operation()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Serverless Tasks",
            "version": "1.0.0",
            "description": (
                "Tasks of the caller (the bearer token's `sub`), their attachments and a streaming export. "
                "Every error is an RFC 9457 problem (`application/problem+json`). Generated from the code by "
                "`make openapi`: do not edit."
            ),
        },
        "servers": crud_servers(),
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": components(),
    }


# --- servers ------------------------------------------------------------------------------------------


def crud_servers() -> list[dict[str, Any]]:
    stage = next(iter(specs.http_apis(Template.load()).values())).stage
    options = StackOptions()
    return [
        _server(f"http://127.0.0.1:{options.port_api}", "HTTP API (`make run`, as `sam local start-api` serves it)"),
        _server(f"http://127.0.0.1:{options.port_url}", "CRUD function URL (`make run`; the app verifies the token)"),
        _server(
            "https://{apiId}.execute-api.{region}.amazonaws.com/" + stage,
            "HTTP API on AWS (the stack's ApiUrl output)",
            apiId="your-api-id",
        ),
    ]


def export_servers() -> list[dict[str, Any]]:
    return [
        _server(f"http://127.0.0.1:{StackOptions().port_export}", "export function URL (`make run`)"),
        _server("https://{urlId}.lambda-url.{region}.on.aws", "export function URL on AWS", urlId="your-url-id"),
    ]


def _server(url: str, description: str, **variables: str) -> dict[str, Any]:
    server: dict[str, Any] = {"url": url, "description": description}
    if variables:
        server["variables"] = {name: {"default": value} for name, value in {**variables, "region": "us-east-1"}.items()}
    return server


# --- operations ---------------------------------------------------------------------------------------


def _operation_id(function: Callable[..., Any]) -> str:
    head, *rest = function.__name__.split("_")
    return head + "".join(part.title() for part in rest)


def crud_operation(operation_id: str, function: Callable[..., Any]) -> dict[str, Any]:
    summary = (function.__doc__ or operation_id).strip().splitlines()[0]
    tag = "attachments" if "Attachment" in operation_id else "tasks"
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    parameters = _path_parameters(operation_id)
    if operation_id == "listTasks":
        parameters += list_parameters(LIST_PARAMETERS)
    if operation_id == "getTask":
        parameters.append(_header("If-None-Match", "An ETag of the task: 304 when it is still current."))
    if operation_id in CONDITIONAL_WRITES:
        parameters.append(_header("If-Match", "The task's ETag (or `*`): a stale one is a 412 and nothing changes."))
    if operation_id in IDEMPOTENT_CREATES:
        parameters.append(
            _header(
                "Idempotency-Key",
                "A retry with the same key and body within 24 hours returns the first response without a second "
                "write; the same key with another body is a 422; a retry while the first runs is a 409 with "
                "Retry-After. Scoped to the caller." + REPLAYED_GRANTS.get(operation_id, ""),
                {"type": "string", "pattern": f"^{KEY_FORMAT.pattern}$"},
            )
        )
    if parameters:
        operation["parameters"] = parameters
    body = WRITES_WITH_BODY.get(operation_id) or ("AttachmentRequest" if operation_id == "createAttachment" else None)
    if body:
        media_types = BODY_MEDIA_TYPES.get(operation_id, ("application/json",))
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": {"$ref": SCHEMAS + body}, "example": example(body)} for media in media_types},
        }
    operation["responses"] = {**success_responses(operation_id), **error_responses(ERRORS[operation_id])}
    return operation


def example(body: str) -> dict[str, Any]:
    """A request body that works on a stack deployed with the template's defaults."""
    parameters = Template.load().parameters
    match body:
        case "TaskFields":
            return {"title": "Write the report", "priority": "high", "dueDate": "2026-12-01", "tags": ["work"]}
        case "TaskPatch":
            return {"status": "completed", "dueDate": None}
        case "AttachmentRequest":
            content_type = parameters["AttachmentContentTypes"].split(",")[0]
            return {"fileName": "report.pdf", "contentType": content_type, "size": 1024}
    raise ValueError(f"no example for {body}")


def _path_parameters(operation_id: str) -> list[dict[str, Any]]:
    names = ["taskId"] if operation_id not in ("createTask", "listTasks") else []
    if operation_id in ("getAttachment", "deleteAttachment"):
        names.append("attachmentId")
    return [{"$ref": f"#/components/parameters/{name}"} for name in names]


def _header(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema or _STR}


_STR = {"type": "string"}


def list_parameters(names: Iterable[str]) -> list[dict[str, Any]]:
    """The listing's query parameters: the field table's filters, then sort, limit and cursor."""
    rules: dict[str, tuple[dict[str, Any], str]] = {
        known.parameter: (_type_schema(known.filter.value), known.filter.description + _range_rule(known.parameter))
        for known in LIST_FILTERS
    }
    rules |= {
        "sort": (
            {"type": "string", "enum": list(SORTS), "default": SORTS[0]},
            "`createdAt`: newest first; `dueDate`: soonest first, tasks without a due date left out.",
        ),
        "limit": (
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Page size. A page may hold fewer (even none) when the read budget ran out: follow nextCursor.",
        ),
        "cursor": (
            {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
            "The previous page's nextCursor, with the same filters (a cursor is opaque and signed: any other "
            "value is a 400; empty means none).",
        ),
    }
    return [
        {"name": name, "in": "query", "required": False, "description": rules[name][1], "schema": rules[name][0]}
        for name in names
    ]


def _range_rule(parameter: str) -> str:
    """The cross-parameter rule OpenAPI cannot express, in words: a range's lower bound below its upper."""
    for after, before in RANGES:
        if parameter in (after.parameter, before.parameter):
            return f" With both, {after.parameter} must be earlier than {before.parameter} (both bounds exclusive)."
    return ""


def _type_schema(kind: Any, mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    schema: dict[str, Any] = _untitled(TypeAdapter(pydantic_type(kind)).json_schema(mode=mode))
    return schema


def success_responses(operation_id: str) -> dict[str, Any]:
    task = _json_response("The task.", "Task", etag=True)
    match operation_id:
        case "createTask":
            created = _json_response("The task, created.", "Task", etag=True)
            created["headers"]["Location"] = {"$ref": "#/components/headers/Location"}
            created["links"] = {
                name: {"operationId": name, "parameters": {"taskId": "$response.body#/taskId"}}
                for name in ("getTask", "patchTask", "replaceTask", "deleteTask", "createAttachment", "listAttachments")
            }
            return {"201": created}
        case "listTasks":
            return {"200": _json_response("A page of tasks.", "TaskPage")}
        case "getTask":
            return {"200": task, "304": {"description": "If-None-Match names the current ETag.", "headers": _etag()}}
        case "patchTask" | "replaceTask":
            return {"200": task}
        case "deleteTask" | "deleteAttachment":
            return {"204": {"description": "Deleted."}}
        case "createAttachment":
            created = _json_response("The attachment record (pending) and how to upload it.", "AttachmentUpload")
            created["headers"] = {"Location": {"$ref": "#/components/headers/Location"}}
            created["links"] = {
                name: {
                    "operationId": name,
                    "parameters": {"taskId": "$response.body#/taskId", "attachmentId": "$response.body#/attachmentId"},
                }
                for name in ("getAttachment", "deleteAttachment")
            }
            return {"201": created}
        case "listAttachments":
            return {"200": _json_response("The task's attachments.", "AttachmentList")}
        case "getAttachment":
            return {"200": _json_response("The attachment and, once uploaded, a download URL.", "AttachmentDownload")}
    raise ValueError(f"no success response for {operation_id}")


def _json_response(description: str, schema: str, *, etag: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + schema}}},
    }
    if etag:
        response["headers"] = _etag()
    return response


def _etag() -> dict[str, Any]:
    return {"ETag": {"$ref": "#/components/headers/ETag"}}


def error_responses(statuses: Iterable[int], *, authenticated: bool = True) -> dict[str, Any]:
    every = sorted({*statuses, *((401, 503) if authenticated else ())})
    return {str(status): {"$ref": f"#/components/responses/{_problem_name(status)}"} for status in every}


def export_operation() -> dict[str, Any]:
    names = [name for name in LIST_PARAMETERS if name != "limit"]
    fmt = {"type": "string", "enum": list(FRAMINGS), "default": next(iter(FRAMINGS))}
    parameters = [
        *list_parameters(names),
        {"name": "format", "in": "query", "required": False, "description": "Body layout.", "schema": fmt},
    ]
    content = {
        FRAMINGS["ndjson"].media_type: {
            "schema": {"type": "string", "description": "Lines, each an ExportLine."},
            "x-line-schema": {"$ref": SCHEMAS + "ExportLine"},
        },
        FRAMINGS["json"].media_type: {"schema": {"$ref": SCHEMAS + "ExportDocument"}},
    }
    return {
        "operationId": "exportTasks",
        "tags": ["export"],
        "summary": "Stream every task of the caller that matches the filters (export function URL).",
        "description": (
            "NDJSON (default): one task per line, then one `_end` line with the count and a nextCursor to "
            "resume with (null when done); an `_error` line instead after a failure past the first byte. "
            "`format=json`: one streamed document `{tasks, count, nextCursor}`."
        ),
        "parameters": parameters,
        "responses": {"200": {"description": "The tasks, streamed.", "content": content}, **error_responses([400])},
    }


def health_operation() -> dict[str, Any]:
    ok = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
    return {
        "operationId": "healthz",
        "tags": ["export"],
        "summary": "Readiness of the export function (no token).",
        "security": [],
        "responses": {"200": {"description": "Ready.", "content": {"application/json": {"schema": ok}}}},
    }


# --- components ---------------------------------------------------------------------------------------


def components() -> dict[str, Any]:
    return {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT from the stack's issuer; its `sub` is the caller (`make token USER=alice`).",
            }
        },
        "parameters": {
            name: {"name": name, "in": "path", "required": True, "schema": _STR} for name in ("taskId", "attachmentId")
        },
        "headers": {
            "ETag": {"description": "Strong; changes with the task's version.", "schema": _STR},
            "Location": {"description": "Path of the created resource.", "schema": _STR},
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
            "WWW-Authenticate": {"description": "Bearer challenge.", "schema": _STR},
            "Allow": {"description": "Methods the path serves.", "schema": _STR},
        },
        "responses": {_problem_name(status): problem_response(status) for status in _problem_statuses()},
        "schemas": schemas(),
    }


def _problem_statuses() -> list[int]:
    return sorted({status for status, _, _ in problems.problem_types()} | {500})


def _problem_name(status: int) -> str:
    return HTTPStatus(status).phrase.replace(" ", "")


def problem_response(status: int) -> dict[str, Any]:
    types = [(title, slug) for code, title, slug in problems.problem_types() if code == status] or [
        ("Internal server error", "internal-error")
    ]
    schema: dict[str, Any] = {"$ref": SCHEMAS + ("ValidationProblem" if status == 422 else "Problem")}
    response: dict[str, Any] = {
        "description": "; ".join(f"{title} ({problems.PROBLEM_TYPE_BASE}{slug})" for title, slug in types),
        "content": {PROBLEM: {"schema": schema}},
    }
    header = {401: "WWW-Authenticate", 405: "Allow", 409: "Retry-After", 503: "Retry-After"}.get(status)
    if header:
        response["headers"] = {header: {"$ref": f"#/components/headers/{header}"}}
    if status == 401:  # the HTTP API's JWT authorizer answers before the function does
        message = {"type": "object", "required": ["message"], "properties": {"message": _STR}}
        response["content"]["application/json"] = {"schema": message}
    return response


def schemas() -> dict[str, Any]:
    found = {model.__name__: _model_schema(model) for model in (TaskFields, TaskPatch, AttachmentRequest)}
    task = task_schema()
    parameters = Template.load().parameters
    allowed = found["AttachmentRequest"]["properties"]
    # The limits are the stack's parameters: the document states a stack deployed with the defaults.
    allowed["contentType"]["enum"] = parameters["AttachmentContentTypes"].split(",")
    allowed["contentType"]["description"] = (
        "One of the stack's AttachmentContentTypes parameter (the enum lists its default)."
    )
    allowed["size"]["maximum"] = int(parameters["AttachmentMaxBytes"])
    allowed["size"]["description"] = (
        "The exact size in bytes; at most the AttachmentMaxBytes parameter (the maximum is its default)."
    )
    allowed["fileName"]["pattern"] = USABLE_FILE_NAME
    allowed["fileName"]["description"] = (
        "Only its last path segment is kept, without control characters; that must hold a letter, digit or _."
    )
    attachment = attachment_schema()
    upload = _typed_dict_schema(UploadGrant)
    download = _typed_dict_schema(DownloadGrant)
    problem_properties = {
        "type": {"type": "string", "format": "uri"},
        "title": _STR,
        "status": {"type": "integer"},
        "detail": _STR,
        "correlationId": {"type": "string", "description": "Only on a 500: quote it when reporting the failure."},
    }
    field_error = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": _STR, "message": _STR},
    }
    end = {"type": "object", "required": ["count", "nextCursor"]}
    end["properties"] = {"count": {"type": "integer", "minimum": 0}, "nextCursor": {"type": ["string", "null"]}}
    return {
        **found,
        "Task": task,
        "TaskPage": {
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": SCHEMAS + "Task"}},
                "nextCursor": {"type": ["string", "null"], "description": "null exactly when nothing more matches."},
            },
        },
        "Attachment": attachment,
        "AttachmentUpload": _extended("Attachment", {"upload": upload}),
        "AttachmentDownload": _extended("Attachment", {"download": {"oneOf": [download, {"type": "null"}]}}),
        "AttachmentList": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": SCHEMAS + "Attachment"}}},
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": problem_properties,
        },
        "ValidationProblem": {
            "allOf": [
                {"$ref": SCHEMAS + "Problem"},
                {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {"errors": {"type": "array", "items": field_error}},
                },
            ]
        },
        "ExportLine": {
            "description": "A task, or the last line: `_end`, or `_error` after a failure past the first byte.",
            "oneOf": [
                {"$ref": SCHEMAS + "Task"},
                {"type": "object", "required": ["_end"], "properties": {"_end": end}, "additionalProperties": False},
                {
                    "type": "object",
                    "required": ["_error"],
                    "properties": {"_error": {"$ref": SCHEMAS + "Problem"}},
                    "additionalProperties": False,
                },
            ],
        },
        "ExportDocument": {
            "type": "object",
            "required": ["tasks"],
            "description": "`count` and `nextCursor` when complete, `_error` instead after a failure.",
            "properties": {
                "tasks": {"type": "array", "items": {"$ref": SCHEMAS + "Task"}},
                "count": {"type": "integer", "minimum": 0},
                "nextCursor": {"type": ["string", "null"]},
                "_error": {"$ref": SCHEMAS + "Problem"},
            },
        },
    }


def attachment_schema() -> dict[str, Any]:
    """The attachment record as the API returns it."""
    schema = _dataclass_schema(Attachment, keep=set(ATTACHMENT_FIELDS))
    schema["properties"]["status"]["enum"] = ["pending", "available"]
    return schema


def task_schema() -> dict[str, Any]:
    """The task as the API returns it: every public field of the table, read-only ones marked."""
    properties = {}
    for row in PUBLIC_FIELDS:
        schema = _type_schema(row.annotation, "serialization")
        if row.spec.description:
            schema["description"] = row.spec.description
        if not row.spec.writable:
            schema["readOnly"] = True
        properties[row.name] = schema
    properties["version"]["minimum"] = 1
    return {"type": "object", "required": [row.name for row in PUBLIC_FIELDS], "properties": properties}


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return _untitled(model.model_json_schema(ref_template=SCHEMAS + "{model}"))


def _dataclass_schema(kind: type, *, exclude: set[str] = set(), keep: set[str] | None = None) -> dict[str, Any]:  # noqa: B006
    schema = _untitled(TypeAdapter(kind).json_schema())
    names = [name for name in schema["properties"] if name not in exclude and (keep is None or name in keep)]
    schema["properties"] = {name: schema["properties"][name] for name in names}
    schema["required"] = names
    schema.pop("description", None)
    return schema


def _typed_dict_schema(kind: Any) -> dict[str, Any]:
    schema = _untitled(TypeAdapter(kind).json_schema())
    schema.pop("description", None)
    return schema


def _extended(base: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": SCHEMAS + base},
            {"type": "object", "required": sorted(properties), "properties": properties},
        ]
    }


def _untitled(value: Any) -> Any:
    """The schema without pydantic's generated `title`s (the names say it already)."""
    if isinstance(value, dict):
        return {key: _untitled(item) for key, item in value.items() if not (key == "title" and isinstance(item, str))}
    if isinstance(value, list):
        return [_untitled(item) for item in value]
    return value


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", type=Path, default=DOCUMENT)
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is not what the code generates: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
