"""The API docs page of `make run`: `openapi.json` and Swagger UI 5 (assets of the `swagger-ui-py` package, offline).

It is served on an origin of its own, as a docs site would be, so its "Try it out" calls are
cross-origin: the stack allows them because `make run` adds this origin to the template's
`CorsAllowedOrigins` parameter, as a deployment would (`cors_origins`). The document served is the
committed one with its servers pointing at the running stack, and the page comes authorized with a
bearer token.
"""

import json
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from swagger_ui.utils import SWAGGER_UI_PY_ROOT
from werkzeug.wrappers import Request

from local import REPO_ROOT
from local.events import Response
from local.template import Template

DOCUMENT = REPO_ROOT / "openapi.json"
ASSETS = SWAGGER_UI_PY_ROOT / "static"
SECURITY_SCHEME = "bearerAuth"
CORS_PARAMETER = "CorsAllowedOrigins"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Serverless Tasks API (local)</title>
  <link rel="stylesheet" href="/swagger-ui.css">
  <link rel="icon" type="image/png" href="/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swagger-ui-bundle.js"></script>
  <script src="/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      deepLinking: true,
      persistAuthorization: false,
      onComplete: () => window.ui.preauthorizeApiKey(__SCHEME__, __TOKEN__),
    });
  </script>
</body>
</html>
"""


def cors_origins(template: Template, *origins: str) -> str:
    """The `CorsAllowedOrigins` value that adds `origins` to the template's own (e.g. a local frontend's)."""
    configured = template.parameters.get(CORS_PARAMETER) or []
    return ",".join(dict.fromkeys([*configured, *origins]))


def origins_of(url: str) -> list[str]:
    """A loopback URL's origin under both names a browser may use for it."""
    return [url, url.replace("//127.0.0.1:", "//localhost:")]


def served_document(api_url: str, function_url: str, export_url: str, path: Path = DOCUMENT) -> dict[str, Any]:
    """The committed document with its servers pointing at the running stack (AWS servers kept)."""
    document: dict[str, Any] = json.loads(path.read_text())
    local = [
        (api_url, "HTTP API (this local stack)"),
        (function_url, "CRUD function URL (this local stack; the app verifies the token)"),
    ]
    document["servers"] = _servers(local, document.get("servers", []))
    for item in document["paths"].values():
        if "servers" in item:
            item["servers"] = _servers([(export_url, "export function URL (this local stack)")], item["servers"])
    return document


def _servers(local: Iterable[tuple[str, str]], documented: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    remote = [server for server in documented if not server["url"].startswith("http://127.0.0.1")]
    return [*({"url": url, "description": text} for url, text in local), *remote]


class DocsSite:
    """`/` the Swagger UI page, `/openapi.json` the document, and the Swagger UI assets."""

    def __init__(self, document: dict[str, Any], token: str):
        self.document = json.dumps(document, indent=2).encode()
        page = PAGE.replace("__SCHEME__", json.dumps(SECURITY_SCHEME)).replace("__TOKEN__", json.dumps(token))
        self.page = page.encode()

    def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(b"GET only\n", 405, [("allow", "GET, HEAD"), ("content-type", "text/plain")])
        path = request.path
        if path in ("/", "/index.html"):
            return self._ok("text/html; charset=utf-8", self.page)
        if path == "/openapi.json":
            return self._ok("application/json", self.document)
        asset = ASSETS / path.lstrip("/")
        if "/" in path.lstrip("/") or not asset.is_file():
            return Response(b"not found\n", 404, [("content-type", "text/plain")])
        media_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        return self._ok(media_type, asset.read_bytes())

    @staticmethod
    def _ok(media_type: str, body: bytes) -> Response:
        return Response(body, 200, [("content-type", media_type), ("cache-control", "no-store")])
