"""The HTTP API emulator and the function URL emulator, over a small threaded HTTP server.

`HttpApiEmulator` does what API Gateway does for an HTTP API declared in template.yaml: it matches the
request against the template's routes (unmatched: 404 `{"message":"Not Found"}`), answers CORS
preflights from the API's CorsConfiguration, runs the route's JWT authorizer (failure: 401
`{"message":"Unauthorized"}` with `www-authenticate`, and the function is not called), builds the
payload 2.0 event with the token's claims and invokes the function.

`FunctionUrlEmulator` does what a function URL with `AuthType: NONE` does: every method and path goes to
the function as a payload 2.0 event with routeKey `$default` and no authorizer.

Both are plain callables `HttpRequest -> HttpResponse` (unit tests call them directly with fake
handlers); `local.server.HttpServer` puts one on a loopback port.
"""

import fnmatch
import importlib
import json
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

import jwt

from local.events import (
    HttpRequest,
    HttpResponse,
    InvalidLambdaResponse,
    LambdaContext,
    RequestIdentity,
    build_event,
    request_id,
    to_http_response,
)
from local.server import MAX_REQUEST_BYTES
from local.template import REPO_ROOT, ApiRoute, CorsConfig, FunctionSpec, FunctionUrlSpec, HttpApiSpec

SRC_DIR = REPO_ROOT / "src"
MAX_INVOKE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (request and response)
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # what an HTTP API JWT authorizer accepts

Handler = Callable[[dict[str, Any], Any], Any]


# --- functions ----------------------------------------------------------------------------------------


class InvocationError(Exception):
    """The function raised, timed out or returned something Lambda cannot serialise."""


def load_handler(handler: str, src_dir: Path = SRC_DIR) -> Handler:
    """Import `package.module.function` the way the Python runtime does, with `src_dir` as the code root."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {handler!r} is not module.function")
    if str(src_dir) not in sys.path:
        sys.path.insert(0, str(src_dir))
    function = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise TypeError(f"handler {handler!r} is not callable")
    return function  # type: ignore[no-any-return]


class LambdaFunction:
    """One warm execution environment of a function: one invocation at a time, as in Lambda.

    The handler's module state (Powertools resolver and its `current_event`, logger keys, metrics) is
    per environment and not thread-safe, so concurrent requests queue here instead of racing. Functions
    loaded into one process also share Powertools' class-level state (the metric set), so the stack
    gives all of them one `lock`: the process is one execution environment for all its functions.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        arn: str | None = None,
        timeout_seconds: float = 3,
        memory_mb: int = 128,
        lock: threading.Lock | None = None,
    ):
        self.name = name
        self.handler = handler
        self.arn = arn or f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._lock = lock or threading.Lock()

    @classmethod
    def from_spec(
        cls, spec: FunctionSpec, src_dir: Path = SRC_DIR, *, lock: threading.Lock | None = None
    ) -> "LambdaFunction":
        return cls(
            spec.name,
            load_handler(spec.handler, src_dir),
            arn=spec.arn,
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            lock=lock,
        )

    def invoke(self, event: Mapping[str, Any]) -> Any:
        payload = json.dumps(event)
        if len(payload) > MAX_INVOKE_BYTES:
            raise InvocationError(f"the event is {len(payload)} bytes, over Lambda's {MAX_INVOKE_BYTES}")
        with self._lock:
            context = LambdaContext(
                self.name, self.arn, memory_limit_in_mb=self.memory_mb, timeout_seconds=self.timeout_seconds
            )
            started = time.monotonic()
            try:
                result = self.handler(json.loads(payload), context)
            except Exception as exc:
                raise InvocationError(f"{self.name} raised {type(exc).__name__}\n{traceback.format_exc()}") from exc
            elapsed = time.monotonic() - started
        if elapsed > self.timeout_seconds:
            raise InvocationError(
                f"{self.name} took {elapsed:.1f} s, over its Timeout of {self.timeout_seconds} s: "
                "Lambda would have stopped it (Task timed out)"
            )
        try:
            serialised = json.dumps(result, default=_runtime_json_default)
        except (TypeError, ValueError) as exc:
            raise InvocationError(f"{self.name} returned a value Lambda cannot serialise: {exc}") from exc
        if len(serialised) > MAX_INVOKE_BYTES:
            raise InvocationError(f"{self.name} returned {len(serialised)} bytes, over Lambda's {MAX_INVOKE_BYTES}")
        return json.loads(serialised)


def _runtime_json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # the Python runtime's marshaller turns Decimal into a number
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# --- routes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    segments: tuple[str, ...]

    @property
    def priority(self) -> tuple[Any, ...]:
        # API Gateway picks the most specific match: literal segments over {param} over {greedy+},
        # left to right; then an explicit method over ANY.
        kinds = tuple(2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments)
        return (kinds, -len(self.segments), self.route.method == "ANY")

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        parameters: dict[str, str] = {}
        for index, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):
                rest = segments[index:]
                if not rest or not rest[0]:
                    return None
                parameters[pattern[1:-2]] = unquote("/".join(rest))
                return parameters
            if index >= len(segments):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segments[index]:
                    return None
                parameters[pattern[1:-1]] = unquote(segments[index])
            elif unquote(segments[index]) != pattern:
                return None
        return parameters if len(segments) == len(self.segments) else None


class RouteTable:
    """The routes of one HTTP API, matched as API Gateway matches them."""

    def __init__(self, routes: Iterable[ApiRoute]):
        compiled = [_CompiledRoute(route, _segments(route.path)) for route in routes]
        self._routes = sorted(compiled, key=lambda item: item.priority)

    @property
    def routes(self) -> list[ApiRoute]:
        return [item.route for item in self._routes]

    def match(self, method: str, raw_path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        segments = _segments(raw_path)
        for item in self._routes:
            if item.route.method not in (method.upper(), "ANY"):
                continue
            parameters = item.match(segments)
            if parameters is not None:
                return item.route, parameters
        return None


def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")[1:]) if path.startswith("/") else tuple(path.split("/"))


# --- the JWT authorizer -------------------------------------------------------------------------------


class AuthorizerError(Exception):
    def __init__(self, status: int, description: str, *, scope: str = ""):
        super().__init__(description)
        self.status = status
        self.description = description
        self.scope = scope

    def response(self) -> HttpResponse:
        message = "Unauthorized" if self.status == 401 else "Forbidden"
        error = "invalid_token" if self.status == 401 else "insufficient_scope"
        challenge = f'Bearer scope="{self.scope}" error="{error}" error_description="{self.description}"'
        return HttpResponse.json(
            self.status,
            {"message": message},
            [("www-authenticate", challenge)],
        )


JwksSource = Callable[[bool], Mapping[str, Any]]  # refresh -> the JWKS document


class RemoteJwks:
    """The issuer's keys, found as API Gateway finds them: `{issuer}/.well-known/openid-configuration` -> jwks_uri.

    Cached for `lifespan` seconds; an unknown kid forces one refetch (at most every `cooldown` seconds).
    """

    def __init__(self, issuer: str, *, lifespan: float = 300, cooldown: float = 5, timeout: float = 3):
        self.issuer = issuer.rstrip("/")
        self._lifespan = lifespan
        self._cooldown = cooldown
        self._timeout = timeout
        self._lock = threading.Lock()
        self._jwks: Mapping[str, Any] | None = None
        self._fetched = 0.0

    def __call__(self, refresh: bool = False) -> Mapping[str, Any]:
        with self._lock:
            age = time.monotonic() - self._fetched
            if self._jwks is None or age > self._lifespan or (refresh and age > self._cooldown):
                configuration = self._get(f"{self.issuer}/.well-known/openid-configuration")
                self._jwks = self._get(str(configuration["jwks_uri"]))
                self._fetched = time.monotonic()
            return self._jwks

    def _get(self, url: str) -> Mapping[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an HTTP URL: {url}")
        with urllib.request.urlopen(url, timeout=self._timeout) as response:  # noqa: S310 - scheme checked above
            document: Mapping[str, Any] = json.load(response)
            return document


def static_jwks(jwks: Callable[[], Mapping[str, Any]]) -> JwksSource:
    """A JwksSource from a function such as `LocalIssuer.jwks` (no HTTP: for unit tests)."""

    def source(refresh: bool = False) -> Mapping[str, Any]:
        return jwks()

    return source


class JwtAuthorizer:
    """An HTTP API JWT authorizer: RSA signature (key by kid from the JWKS), iss, aud or client_id, exp, nbf, scopes."""

    def __init__(self, issuer: str, audience: str | Sequence[str], jwks: JwksSource):
        self.issuer = issuer.rstrip("/")
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        self._jwks = jwks

    def authorize(self, request: HttpRequest, route: ApiRoute) -> dict[str, Any]:
        """The event's `requestContext.authorizer`, or AuthorizerError (401 bad token, 403 missing scope)."""
        if route.authorizer is None:
            raise ValueError(f"{route.route_key} has no authorizer")
        value = (request.header(route.authorizer.identity_header) or "").strip()
        scheme, _, rest = value.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else value
        if not token:
            raise AuthorizerError(401, "the token is missing")
        claims = self._verify(token)
        granted = _token_scopes(claims)
        if route.scopes and not set(route.scopes) & set(granted):
            required = " ".join(route.scopes)
            raise AuthorizerError(403, f"expected scopes: [{required}]", scope=required)
        return {
            "jwt": {
                "claims": {name: _claim_text(value) for name, value in claims.items()},
                "scopes": list(granted) if route.scopes else None,
            }
        }

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthorizerError(401, "the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise AuthorizerError(401, f"signing method {algorithm} is invalid")
        key = self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[str(algorithm)],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthorizerError(401, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthorizerError(401, "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthorizerError(401, f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthorizerError(401, "the token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthorizerError(401, "the token is malformed") from None
        if claims.get("iss") != self.issuer:
            raise AuthorizerError(401, "the token does not have a valid issuer")
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(self.audiences) & {str(item) for item in audiences if item is not None}:
            raise AuthorizerError(401, "the token does not have a valid audience")
        return claims

    def _key(self, kid: Any) -> Any:
        if not kid:
            raise AuthorizerError(401, "the token has no kid header")
        for refresh in (False, True):
            try:
                jwks = self._jwks(refresh)
            except Exception:  # API Gateway answers 401 when the issuer's keys cannot be fetched
                raise AuthorizerError(401, "the issuer's keys cannot be fetched") from None
            for entry in jwks.get("keys", []):
                if entry.get("kid") == kid and entry.get("kty") == "RSA":
                    return jwt.PyJWK(dict(entry)).key
        raise AuthorizerError(401, f"no key with kid {kid} in the issuer's JWKS")


def _token_scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    raw = claims.get("scope", claims.get("scp", ""))
    return tuple(raw) if isinstance(raw, list) else tuple(str(raw).split())


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings, as API Gateway sends them (lists as `[a b]`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# --- CORS ---------------------------------------------------------------------------------------------


class Cors:
    """CORS as API Gateway and function URLs apply it: preflights answered, the function's own CORS headers replaced."""

    def __init__(self, config: CorsConfig):
        self.config = config

    def allows_origin(self, origin: str) -> bool:
        return any(pattern == "*" or fnmatch.fnmatchcase(origin, pattern) for pattern in self.config.allow_origins)

    @staticmethod
    def is_preflight(request: HttpRequest) -> bool:
        return (
            request.method == "OPTIONS"
            and bool(request.header("origin"))
            and bool(request.header("access-control-request-method"))
        )

    def preflight(self, request: HttpRequest) -> HttpResponse | None:
        if not self.is_preflight(request):
            return None
        origin = request.header("origin", "") or ""
        requested_method = request.header("access-control-request-method", "") or ""
        response = HttpResponse(204)
        methods = self.config.allow_methods
        if self.allows_origin(origin) and ("*" in methods or requested_method.upper() in methods):
            response.headers.extend(self._origin_headers(origin))
            response.headers.append(("access-control-allow-methods", ",".join(methods)))
            if self.config.allow_headers:
                response.headers.append(("access-control-allow-headers", ",".join(self.config.allow_headers)))
            if self.config.max_age is not None:
                response.headers.append(("access-control-max-age", str(self.config.max_age)))
        return response

    def decorate(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if self.is_preflight(request):
            return response  # preflight() made it
        response.headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
        origin = request.header("origin")
        if origin and self.allows_origin(origin):
            response.headers.extend(self._origin_headers(origin))
            if self.config.expose_headers:
                response.headers.append(("access-control-expose-headers", ",".join(self.config.expose_headers)))
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
    _handle: Callable[[HttpRequest, str], HttpResponse]  # each emulator's own routing and invocation

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id_value = request_id()
        preflight = self.cors.preflight(request) if self.cors else None
        response = preflight or self._handle(request, request_id_value)
        if self.cors:
            response = self.cors.decorate(request, response)
        response.headers.append((self.request_id_header, request_id_value))
        return response


class HttpApiEmulator(_Endpoint):
    """API Gateway HTTP API (payload format 2.0) in front of local functions."""

    request_id_header = "apigw-requestid"

    def __init__(
        self,
        api: HttpApiSpec,
        functions: Mapping[str, LambdaFunction],
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

    def _handle(self, request: HttpRequest, request_id_value: str) -> HttpResponse:
        if len(request.body) > MAX_REQUEST_BYTES:
            return HttpResponse.json(413, {"message": "Request Entity Too Large"})
        path, identity = request.raw_path, self.identity
        if self.stage_prefix and path.startswith(self.stage_prefix + "/"):
            path = path[len(self.stage_prefix) :]  # /dev/tasks: route /tasks of stage dev, as on AWS
        else:  # /tasks: at the root, as `sam local start-api` serves it, i.e. as a $default stage would
            identity = replace(identity, stage="$default")
        matched = self.routes.match(request.method, path)
        if matched is None:
            return HttpResponse.json(404, {"message": "Not Found"})
        route, parameters = matched
        authorizer = None
        if route.authorizer is not None and self.authorizer is not None:  # __init__ checked it is there
            try:
                authorizer = self.authorizer.authorize(request, route)
            except AuthorizerError as error:
                self._note(f"{route.route_key}: {error.status} {error.description}")
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
        except (InvocationError, InvalidLambdaResponse) as error:
            self._note(f"{route.route_key}: {error}", always=True)
            return HttpResponse.json(500, {"message": "Internal Server Error"})

    def _note(self, message: str, *, always: bool = False) -> None:
        """Authorizer refusals go to the access log; function failures always show (as in CloudWatch)."""
        if self.log is not None or always:
            print(f"[http-api] {message}", file=self.log or sys.stderr, flush=True)


class FunctionUrlEmulator(_Endpoint):
    """A function URL: every method and path to one function, routeKey `$default`, no authorizer."""

    request_id_header = "x-amzn-requestid"

    def __init__(
        self,
        function: LambdaFunction,
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

    def _handle(self, request: HttpRequest, request_id_value: str) -> HttpResponse:
        if self.url.auth_type != "NONE":  # AWS_IAM: SigV4 is not emulated, so nothing gets through
            return HttpResponse.json(403, {"Message": "Forbidden"})
        event = build_event(request, self.identity, request_id_value=request_id_value)
        try:
            return to_http_response(self.function.invoke(event))
        except (InvocationError, InvalidLambdaResponse) as error:
            print(f"[function-url] {error}", file=self.log or sys.stderr, flush=True)
            return HttpResponse.json(502, {"Message": "Internal Server Error"})
