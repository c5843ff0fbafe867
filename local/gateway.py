"""The HTTP API emulator and the function URL emulator: plain callables, werkzeug `Request -> Response`.

`HttpApiEmulator` does what API Gateway does for the HTTP API of template.yaml: it matches the request
against the template's routes (unmatched: 404 `{"message":"Not Found"}`), answers CORS preflights from
the API's CorsConfiguration, runs the route's JWT authorizer (failure: 401 `{"message":"Unauthorized"}`
with `www-authenticate`, and the function is not called), then invokes the function with a payload 2.0
event carrying the token's claims. `FunctionUrlEmulator` does what a function URL with `AuthType: NONE`
does: every method and path goes to the function, routeKey `$default`, no authorizer.
"""

import fnmatch
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TextIO
from urllib.parse import unquote

from starlette.middleware.cors import CORSMiddleware
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from local.authorizer import AuthorizerError, JwtAuthorizer
from local.events import (
    InvalidLambdaResponse,
    RequestIdentity,
    Response,
    build_event,
    json_response,
    raw_path,
    request_id,
    to_http_response,
)
from local.server import MAX_REQUEST_BYTES
from local.specs import ApiRoute, CorsConfig, FunctionUrlSpec, HttpApiSpec
from local.workers import FunctionPool, InvocationFailed, Throttled


class RouteTable:
    """The routes of one HTTP API (literal segments and `{parameters}`, as the template declares them),
    matched as API Gateway matches them: a literal segment wins over a parameter, left to right."""

    def __init__(self, routes: Iterable[ApiRoute]):
        def specificity(route: ApiRoute) -> tuple[bool, ...]:
            return tuple(segment.startswith("{") for segment in route.path.split("/"))

        self.routes = sorted(routes, key=specificity)

    def match(self, method: str, raw_path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        segments = raw_path.split("/")
        for route in self.routes:
            patterns = route.path.split("/")
            if route.method != method.upper() or len(patterns) != len(segments):
                continue
            parameters = {p[1:-1]: unquote(s) for p, s in zip(patterns, segments, strict=True) if p.startswith("{")}
            literals = all(p == unquote(s) for p, s in zip(patterns, segments, strict=True) if not p.startswith("{"))
            if literals and all(parameters.values()):
                return route, parameters
        return None


# --- CORS ---------------------------------------------------------------------------------------------


class Cors:
    """CORS as API Gateway and function URLs apply it: preflights answered, the function's own CORS headers replaced."""

    def __init__(self, config: CorsConfig):
        self.config = config

    def allows_origin(self, origin: str) -> bool:
        return any(pattern == "*" or fnmatch.fnmatchcase(origin, pattern) for pattern in self.config.allow_origins)

    @staticmethod
    def is_preflight(request: Request) -> bool:
        return (
            request.method == "OPTIONS"
            and bool(request.headers.get("origin"))
            and bool(request.headers.get("access-control-request-method"))
        )

    def preflight(self, request: Request) -> Response | None:
        if not self.is_preflight(request):
            return None
        origin = request.headers.get("origin", "")
        requested_method = request.headers.get("access-control-request-method", "")
        response = Response(status=204)
        methods = self.config.allow_methods
        if self.allows_origin(origin) and ("*" in methods or requested_method.upper() in methods):
            response.headers.extend(self._origin_headers(origin))
            response.headers.add("access-control-allow-methods", ",".join(methods))
            if self.config.allow_headers:
                response.headers.add("access-control-allow-headers", ",".join(self.config.allow_headers))
            if self.config.max_age is not None:
                response.headers.add("access-control-max-age", str(self.config.max_age))
        return response

    def decorate(self, request: Request, response: Response) -> Response:
        if self.is_preflight(request):
            return response  # preflight() made it
        response.headers = Headers([(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")])
        origin = request.headers.get("origin")
        if origin and self.allows_origin(origin):
            response.headers.extend(self._origin_headers(origin))
            if self.config.expose_headers:
                response.headers.add("access-control-expose-headers", ",".join(self.config.expose_headers))
        return response

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        if self.config.allow_credentials:
            return [("access-control-allow-origin", origin), ("access-control-allow-credentials", "true")]
        allowed = "*" if "*" in self.config.allow_origins else origin
        return [("access-control-allow-origin", allowed), ("vary", "origin")]


# --- the emulators ------------------------------------------------------------------------------------


class _Endpoint:
    """What both emulators do around each request: a request id, CORS preflight and response headers."""

    request_id_header: str
    cors: "Cors | None"
    _handle: Callable[[Request, str], Response]  # each emulator's own routing and invocation

    def __call__(self, request: Request) -> Response:
        request_id_value = request_id()
        preflight = self.cors.preflight(request) if self.cors else None
        response = preflight or self._handle(request, request_id_value)
        if self.cors:
            response = self.cors.decorate(request, response)
        response.headers.add(self.request_id_header, request_id_value)
        return response


class HttpApiEmulator(_Endpoint):
    """API Gateway HTTP API (payload format 2.0) in front of local functions."""

    request_id_header = "apigw-requestid"

    def __init__(
        self,
        api: HttpApiSpec,
        functions: Mapping[str, FunctionPool],
        authorizer: JwtAuthorizer | None,
        *,
        api_id: str = "local",
        log: TextIO | None = None,
    ):
        missing = {route.function for route in api.routes} - set(functions)
        if missing:
            raise ValueError(f"no local function for {sorted(missing)}")
        if authorizer is None and any(route.authorizer for route in api.routes):
            raise ValueError("the API has JWT-authorized routes: give a JwtAuthorizer")
        self.api = api
        self.routes = RouteTable(api.routes)
        self.functions = functions
        self.authorizer = authorizer
        self.identity = RequestIdentity(api_id=api_id, stage=api.stage)
        self.stage_prefix = "" if api.stage == "$default" else f"/{api.stage}"
        self.cors = Cors(api.cors) if api.cors else None
        self.log = log

    def _handle(self, request: Request, request_id_value: str) -> Response:
        if len(request.get_data()) > MAX_REQUEST_BYTES:
            return json_response(413, {"message": "Request Entity Too Large"})
        path, identity = raw_path(request), self.identity
        if self.stage_prefix and path.startswith(self.stage_prefix + "/"):
            path = path[len(self.stage_prefix) :]  # /dev/tasks: route /tasks of stage dev, as on AWS
        else:  # /tasks: at the root, as `sam local start-api` serves it, i.e. as a $default stage would
            identity = replace(identity, stage="$default")
        matched = self.routes.match(request.method, path)
        if matched is None:
            return json_response(404, {"message": "Not Found"})
        route, parameters = matched
        authorizer = None
        if route.authorizer is not None and self.authorizer is not None:  # __init__ checked it is there
            try:
                authorizer = self.authorizer.authorize(request.headers.get(route.authorizer.identity_header))
            except AuthorizerError as error:
                self._note(f"{route.route_key}: 401 {error.description}")
                return error.response()
        event = build_event(
            request,
            identity,
            route_key=route.route_key,
            path_parameters=parameters,
            authorizer=authorizer,
            decode_path=True,
            request_id_value=request_id_value,
        )
        try:
            return to_http_response(self.functions[route.function].invoke(event))
        except (InvocationFailed, InvalidLambdaResponse) as error:  # throttles too, as on AWS
            self._note(f"{route.route_key}: {error}", always=True)
            return json_response(500, {"message": "Internal Server Error"})

    def _note(self, message: str, *, always: bool = False) -> None:
        """Authorizer refusals go to the access log; function failures always show (as in CloudWatch)."""
        if self.log is not None or always:
            print(f"[http-api] {message}", file=self.log or sys.stderr, flush=True)


class FunctionUrlEmulator(_Endpoint):
    """A function URL: every method and path to one function, routeKey `$default`, no authorizer."""

    request_id_header = "x-amzn-requestid"

    def __init__(
        self,
        function: FunctionPool,
        url: FunctionUrlSpec | None = None,
        *,
        url_id: str = "local",
        log: TextIO | None = None,
    ):
        self.function = function
        self.url = url or FunctionUrlSpec(auth_type="NONE", invoke_mode="BUFFERED", cors=None)
        self.identity = RequestIdentity(api_id=url_id, account_id="anonymous")
        self.cors = Cors(self.url.cors) if self.url.cors else None
        self.log = log

    def _handle(self, request: Request, request_id_value: str) -> Response:
        if self.url.auth_type != "NONE":  # AWS_IAM: SigV4 is not emulated, so nothing gets through
            return json_response(403, {"Message": "Forbidden"})
        event = build_event(request, self.identity, request_id_value=request_id_value)
        try:
            return to_http_response(self.function.invoke(event))
        except Throttled as error:  # Lambda's TooManyRequestsException reaches the caller as a 429
            print(f"[function-url] {error}", file=self.log or sys.stderr, flush=True)
            return json_response(429, {"Message": "Rate Exceeded."})
        except (InvocationFailed, InvalidLambdaResponse) as error:
            print(f"[function-url] {error}", file=self.log or sys.stderr, flush=True)
            return json_response(502, {"Message": "Internal Server Error"})


def with_cors(app: Any, cors: CorsConfig) -> Any:
    """The ASGI app behind its function URL's CORS configuration, which Lambda applies in front of it."""
    return CORSMiddleware(
        app,
        allow_origins=list(cors.allow_origins),
        allow_methods=list(cors.allow_methods) or ["GET"],
        allow_headers=list(cors.allow_headers),
        expose_headers=list(cors.expose_headers),
        allow_credentials=cors.allow_credentials,
        max_age=cors.max_age or 600,
    )
