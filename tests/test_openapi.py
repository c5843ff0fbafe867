"""`openapi.json` is what the code generates, and documents exactly the routes the template and the apps serve."""

import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate
from starlette.routing import Route

from core.wiring import build_services
from local.specs import http_api_routes
from streaming.app import AFTER_RESTORE_PATH, create_app
from tasks import app as crud_app
from tests.support import Backend, export_settings
from tools import openapi

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def documented(document: dict[str, Any], *, export: bool) -> set[tuple[str, str]]:
    """(METHOD, path) of the document's operations on the export function's server, or on the CRUD servers."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if ("servers" in item) == export
        for method in item
        if method in METHODS
    }


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(openapi.DOCUMENT).read_text())
    return document


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert Path(openapi.DOCUMENT).read_text() == openapi.render(openapi.build()), "run `make openapi`"


def test_the_document_is_valid_openapi_3_1() -> None:
    document = committed()

    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_template_route_is_documented_and_nothing_else() -> None:
    declared = {(route.method, route.path) for route in http_api_routes()}

    assert documented(committed(), export=False) == declared


def test_every_documented_crud_route_is_served_by_the_handler() -> None:
    assert documented(committed(), export=False) == set(crud_app.routes())


def test_every_documented_export_route_is_served_by_the_export_app(backend: Backend) -> None:
    settings = export_settings(jwks_url=backend.settings.jwks_url)

    app = create_app(settings, build_services(settings, backend.dynamodb, lambda: backend.s3))
    routes = [route for route in app.routes if isinstance(route, Route)]
    served = {(method, route.path) for route in routes for method in route.methods or () if method != "HEAD"}
    adapter_only = {("POST", AFTER_RESTORE_PATH)}  # the Web Adapter's SnapStart hook, never a caller's route

    assert documented(committed(), export=True) == served - adapter_only  # HEAD: Starlette's twin of a GET


def test_operations_link_create_to_the_task_routes() -> None:
    links = committed()["paths"]["/tasks"]["post"]["responses"]["201"]["links"]

    assert {"getTask", "patchTask", "replaceTask", "deleteTask"} <= set(links)
    assert all(link["parameters"]["taskId"] == "$response.body#/taskId" for link in links.values())


def test_every_problem_type_of_the_code_is_documented() -> None:
    text = Path(openapi.DOCUMENT).read_text()
    slugs = {slug for _, _, slug in openapi.problems.problem_types()}

    assert all(f"{openapi.problems.PROBLEM_TYPE_BASE}{slug}" in text for slug in slugs)
