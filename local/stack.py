"""LocalStack: the whole local stack in this process, on loopback ports.

    with LocalStack(port_api=0, port_export=0, port_url=0, port_issuer=0, port_aws=0) as stack:
        requests.get(f"{stack.api_url}/tasks", headers=stack.issuer.bearer("alice"))

What runs (ports are the `make run` defaults; 0 picks a free port):

- 3003 the local JWT issuer (discovery document + JWKS);
- 5000 moto server (DynamoDB and S3), the table and bucket created from template.yaml; or DynamoDB
  Local / any endpoint for the table with `dynamodb_endpoint` (created there if missing). Presigned POST
  policies are enforced as S3 does, and uploads reach the template's EventBridge rule functions
  (`stack.events.drain()` waits for those deliveries);
- 3000 the HTTP API emulator: template routes, JWT authorizer, the route's function. With a named
  stage (StageName `dev`) the base URL is `http://127.0.0.1:3000/dev`, as on AWS: use `stack.api_url`;
- 3002 the CRUD function's URL (no authorizer: the app verifies the token);
- 3001 the streaming function's ASGI app under uvicorn, behind its function URL's CORS configuration.

The apps are configured as in Lambda, through environment variables, set in this process before the
handlers are imported (and restored by `stop()`). `StackProcess` runs the same stack as a child
process (`python -m local run`), which keeps the test process's environment and imports clean.
"""

import http.client
import importlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from uvicorn.importer import import_from_string

from local import aws
from local.events import HttpRequest, HttpResponse
from local.gateway import SRC_DIR, FunctionUrlEmulator, HttpApiEmulator, JwtAuthorizer, LambdaFunction, RemoteJwks
from local.issuer import DEFAULT_AUDIENCE, DEFAULT_ISSUER_PORT, LocalIssuer, issuer_app
from local.notifications import EventBus, S3Notifications
from local.s3_cors import BucketCors
from local.s3_post import PostPolicyGate
from local.server import AsgiServer, HttpServer
from local.template import DEFAULT_TEMPLATE, REPO_ROOT, CorsConfig, FunctionSpec, Template, TemplateError

STATE_DIR = REPO_ROOT / ".local"
DEFAULT_STATE_FILE = STATE_DIR / "stack.json"
DEFAULT_STREAMING_APP = "streaming.app:app"


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port_api: int = 3000
    port_export: int = 3001
    port_url: int = 3002
    port_issuer: int = DEFAULT_ISSUER_PORT
    port_aws: int = aws.DEFAULT_AWS_PORT
    dynamodb_endpoint: str | None = None  # e.g. DynamoDB Local; None: moto serves the table too
    issuer_url: str | None = None  # None: http://{host}:{issuer port}
    audience: str = DEFAULT_AUDIENCE
    table_name: str = "serverless-tasks-local"
    bucket_name: str = "serverless-tasks-local-attachments"
    template_path: Path = DEFAULT_TEMPLATE
    template_parameters: Mapping[str, str] = field(default_factory=dict)
    src_dir: Path = SRC_DIR
    state_dir: Path = STATE_DIR
    streaming_app: str | None = None  # "module:attribute"; None: read from the streaming function's run.sh
    serve_streaming: bool = True
    serve_notifications: bool = True  # S3 Object Created events to the functions of matching EventBridge rules
    environment: Mapping[str, str] = field(default_factory=dict)  # extra variables for the apps, applied last
    access_log: TextIO | None = None  # one line per request (and handler errors) when given

    @property
    def key_path(self) -> Path:
        return self.state_dir / "jwt-key.pem"


@dataclass
class _Servers:
    """Every port of the stack, bound before anything starts."""

    issuer: HttpServer
    moto: aws.MotoServer
    api: HttpServer
    url: HttpServer
    export: AsgiServer | None

    def stop(self) -> None:
        for server in (self.export, self.url, self.api, self.issuer, self.moto):
            if server is not None:
                with suppress(Exception):
                    server.stop()


class LocalStack:
    """Everything `make run` serves, started by `start()` (or `with`), stopped by `stop()`."""

    def __init__(self, options: StackOptions | None = None, **overrides: Any):
        self.options = replace(options or StackOptions(), **overrides)
        self.template = Template.load(self.options.template_path, parameters=self.options.template_parameters)
        self.template.resource_names.update(
            {
                self.template.table_logical_id(): self.options.table_name,
                self.template.bucket().logical_id: self.options.bucket_name,
            }
        )
        self.events: EventBus | None = None  # S3 notifications: `stack.events.drain()` waits for deliveries
        self.environment: dict[str, str] = {}
        self.started_in: float | None = None
        self._servers: _Servers | None = None
        self._issuer: LocalIssuer | None = None
        self._saved_environment: dict[str, str | None] = {}
        self._stage_prefix = ""
        self._lock = threading.Lock()  # one execution environment for every function of this process

    # -- lifecycle

    def start(self) -> "LocalStack":
        if self._servers is not None:
            raise RuntimeError("the stack is already running")
        began = time.monotonic()
        try:
            self._servers = servers = self._bind()
            self._issuer = issuer = self._start_aws(servers)
            crud, streaming = self._configure(servers, issuer)
            self._start_apps(servers, issuer, crud, streaming)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self) -> None:
        if self.events is not None:
            self.events.stop()
            self.events = None
        if self._servers is not None:
            self._servers.stop()
            self._servers = None
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}

    def __enter__(self) -> "LocalStack":
        return self if self._servers is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- where things are

    @property
    def servers(self) -> _Servers:
        if self._servers is None:
            raise RuntimeError("the local stack is not running: start() it first")
        return self._servers

    @property
    def issuer(self) -> LocalIssuer:
        """The stack's token issuer: `stack.issuer.token("alice")`, `.bearer("bob")`, `.bad_tokens("alice")`."""
        if self._issuer is None:
            raise RuntimeError("the local stack is not running: start() it first")
        return self._issuer

    @property
    def api_url(self) -> str:
        """The HTTP API's base URL: with the stage (`/dev`) when the template names one, as on AWS."""
        return self.servers.api.url + self._stage_prefix

    @property
    def function_url(self) -> str:
        return self.servers.url.url

    @property
    def export_url(self) -> str:
        if self.servers.export is None:
            raise RuntimeError("the streaming app is not served (serve_streaming=False)")
        return self.servers.export.url

    @property
    def issuer_url(self) -> str:
        return self.issuer.issuer

    @property
    def aws_endpoint(self) -> str:
        return self.servers.moto.url

    @property
    def dynamodb_endpoint(self) -> str:
        return self.options.dynamodb_endpoint or self.aws_endpoint

    @property
    def table_name(self) -> str:
        return self.options.table_name

    @property
    def bucket_name(self) -> str:
        return self.options.bucket_name

    def token(self, sub: str = "alice", **kwargs: Any) -> str:
        return self.issuer.token(sub, **kwargs)

    def dynamodb(self) -> Any:
        """A boto3 DynamoDB client on the stack's table store."""
        return aws.client("dynamodb", self.dynamodb_endpoint)

    def s3(self) -> Any:
        return aws.client("s3", self.aws_endpoint)

    def describe(self) -> dict[str, Any]:
        """Everything a client of the stack needs, JSON-ready (what `run` writes to .local/stack.json)."""
        return {
            "pid": os.getpid(),
            "api_url": self.api_url,
            "export_url": self.export_url if self.servers.export else None,
            "function_url": self.function_url,
            "issuer_url": self.issuer_url,
            "audience": self.options.audience,
            "key_path": str(self.options.key_path),
            "aws_endpoint": self.aws_endpoint,
            "dynamodb_endpoint": self.dynamodb_endpoint,
            "table_name": self.table_name,
            "bucket_name": self.bucket_name,
            "started_in_seconds": round(self.started_in or 0, 3),
        }

    # -- startup steps

    def _bind(self) -> _Servers:
        """Take every port first, so a taken one fails before anything starts."""
        o = self.options
        bound: list[Any] = []
        try:
            bound.append(HttpServer(None, o.host, o.port_issuer, name="JWT issuer"))
            bound.append(aws.MotoServer(o.host, o.port_aws))
            bound.append(HttpServer(None, o.host, o.port_api, name="HTTP API", access_log=o.access_log))
            bound.append(HttpServer(None, o.host, o.port_url, name="function URL", access_log=o.access_log))
            if o.serve_streaming:
                bound.append(AsgiServer(None, o.host, o.port_export, name="streaming app", access_log=o.access_log))
        except BaseException:
            for server in bound:
                server.stop()
            raise
        issuer, moto, api, url = bound[:4]
        return _Servers(issuer, moto, api, url, export=bound[4] if o.serve_streaming else None)

    def _start_aws(self, servers: _Servers) -> LocalIssuer:
        o = self.options
        issuer = LocalIssuer(o.key_path, o.issuer_url or f"http://{o.host}:{servers.issuer.port}", o.audience)
        servers.issuer.app = issuer_app(issuer)
        servers.issuer.start()
        servers.moto.gates.append(PostPolicyGate({aws.LOCAL_ACCESS_KEY_ID: aws.LOCAL_SECRET_ACCESS_KEY}))
        servers.moto.observers.append(BucketCors(o.bucket_name, self.template.bucket().cors_rules).decorate)
        servers.moto.start()
        dynamodb_endpoint = o.dynamodb_endpoint or servers.moto.url
        if o.dynamodb_endpoint:
            aws.wait_for_dynamodb(o.dynamodb_endpoint, timeout=10)
        aws.create_table(aws.client("dynamodb", dynamodb_endpoint), self.template, o.table_name)
        aws.create_bucket(aws.client("s3", servers.moto.url), self.template, o.bucket_name)
        return issuer

    def _configure(self, servers: _Servers, issuer: LocalIssuer) -> tuple[FunctionSpec, FunctionSpec | None]:
        """Set the apps' environment variables, as Lambda would from the template (plus the local values)."""
        o = self.options
        functions = self.template.functions()
        crud = self._crud_function(functions)
        streaming = self._streaming_function(functions)
        environment: dict[str, str | None] = {}
        for spec in (streaming, crud):  # the CRUD function's values win where both set one
            if spec is not None:
                environment.update(_app_variables(spec.environment))
        environment.setdefault("POWERTOOLS_SERVICE_NAME", "tasks")
        environment.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTasks")
        environment.update(
            {
                "TABLE_NAME": o.table_name,
                "BUCKET_NAME": o.bucket_name,
                "JWT_ISSUER": issuer.issuer,
                "JWT_AUDIENCE": o.audience,
                "JWKS_URL": issuer.jwks_url,
                "CURSOR_SECRET": cursor_secret(o.state_dir),
                "POWERTOOLS_TRACE_DISABLED": "true",
                **aws.local_aws_environment(
                    dynamodb_endpoint=o.dynamodb_endpoint or servers.moto.url, s3_endpoint=servers.moto.url
                ),
            }
        )
        if streaming is not None:
            environment.setdefault("EXPORT_TIMEOUT_SECONDS", str(streaming.timeout_seconds))
        environment.update(o.environment)
        for name, value in environment.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.environment = {name: value for name, value in environment.items() if value is not None}
        if str(o.src_dir) not in sys.path:
            sys.path.insert(0, str(o.src_dir))
        handlers = [spec.handler.rpartition(".")[0] for spec in functions.values() if spec is not streaming]
        start_fresh([*handlers, (o.streaming_app or self._streaming_app_path(streaming)).partition(":")[0]])
        return crud, streaming

    def _start_apps(
        self, servers: _Servers, issuer: LocalIssuer, crud: FunctionSpec, streaming: FunctionSpec | None
    ) -> None:
        o = self.options
        apis = self.template.http_apis()
        if len(apis) != 1:
            raise TemplateError(f"expected one HTTP API in the template, found {sorted(apis) or 'none'}")
        (api,) = apis.values()
        self._stage_prefix = "" if api.stage == "$default" else f"/{api.stage}"
        functions = {
            logical_id: LambdaFunction.from_spec(self.template.function(logical_id), o.src_dir, lock=self._lock)
            for logical_id in sorted({route.function for route in api.routes})
        }
        authorizer = JwtAuthorizer(issuer.issuer, o.audience, RemoteJwks(issuer.issuer))
        servers.api.app = HttpApiEmulator(api, functions, authorizer, log=o.access_log)
        crud_function = functions.get(crud.logical_id) or LambdaFunction.from_spec(crud, o.src_dir, lock=self._lock)
        servers.url.app = FunctionUrlEmulator(crud_function, crud.url, log=o.access_log)
        if servers.export is not None:
            app = import_from_string(o.streaming_app or self._streaming_app_path(streaming))
            cors = streaming.url.cors if streaming is not None and streaming.url is not None else None
            servers.export.app = app if cors is None else with_cors(app, cors)
        if o.serve_notifications:
            self.events = self._event_bus(servers, functions)
        servers.api.start()
        servers.url.start()
        if servers.export is not None:
            servers.export.start()

    def _event_bus(self, servers: _Servers, loaded: Mapping[str, LambdaFunction]) -> EventBus | None:
        """The template's EventBridge rules, fed with the bucket's `Object Created` events when it enables them."""
        o = self.options
        rules = self.template.event_rules()
        if not rules or not self.template.bucket().eventbridge:
            return None
        functions = dict(loaded)
        for logical_id in sorted({rule.function for rule in rules} - set(functions)):
            spec = self.template.function(logical_id)
            try:
                functions[logical_id] = LambdaFunction.from_spec(spec, o.src_dir, lock=self._lock)
            except (ImportError, AttributeError) as error:
                print(f"local stack: no upload events for {logical_id} ({spec.handler}): {error}", file=sys.stderr)
        bus = EventBus(rules, functions, log=o.access_log or sys.stderr).start()
        s3 = aws.client("s3", servers.moto.url)
        servers.moto.observers.append(S3Notifications([o.bucket_name], bus, lambda: s3).observe)
        servers.moto.gates.append(drain_endpoint(bus))
        return bus

    def _crud_function(self, functions: Mapping[str, FunctionSpec]) -> FunctionSpec:
        routed = {route.function for route in self.template.http_api_routes()}
        candidates = [spec for name, spec in functions.items() if name in routed and spec.url is not None]
        if len(candidates) != 1:
            raise TemplateError(
                "expected one function with both HttpApi routes and a FunctionUrlConfig (the CRUD function), "
                f"found {[spec.logical_id for spec in candidates] or 'none'}"
            )
        return candidates[0]

    @staticmethod
    def _streaming_function(functions: Mapping[str, FunctionSpec]) -> FunctionSpec | None:
        streaming = [spec for spec in functions.values() if spec.url and spec.url.invoke_mode == "RESPONSE_STREAM"]
        return streaming[0] if len(streaming) == 1 else None

    def _streaming_app_path(self, spec: FunctionSpec | None) -> str:
        """`module:app` from the streaming function's run.sh (`exec ... uvicorn streaming.app:app ...`)."""
        if spec is not None:
            for script in (self.options.src_dir / spec.handler, self.options.src_dir / "streaming" / "run.sh"):
                if script.is_file():
                    found = re.search(r"uvicorn\b[^\n]*?\s([A-Za-z_][\w.]*:[A-Za-z_]\w*)", script.read_text())
                    if found:
                        return found.group(1)
        return DEFAULT_STREAMING_APP


DRAIN_PATH = "/_local/events/drain"


def drain_endpoint(bus: EventBus) -> Callable[[HttpRequest], HttpResponse | None]:
    """`POST {aws_endpoint}/_local/events/drain`: answers once every event so far is delivered (for tests)."""

    def gate(request: HttpRequest) -> HttpResponse | None:
        if request.raw_path != DRAIN_PATH:
            return None
        try:
            bus.drain(timeout=30)
        except TimeoutError as error:
            return HttpResponse.json(504, {"message": str(error)})
        return HttpResponse.json(200, {"drained": True, "deliveries": len(bus.deliveries)})

    return gate


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


def _app_variables(environment: Mapping[str, str]) -> dict[str, str | None]:
    """A function's template variables, minus the Lambda/adapter ones (AWS_*) that make no sense in-process."""
    return {name: value for name, value in environment.items() if not name.startswith(("AWS_", "_"))}


def cursor_secret(state_dir: Path = STATE_DIR) -> str:
    """The local CURSOR_SECRET: made once, kept in .local/cursor-secret (mode 0600)."""
    path = state_dir / "cursor-secret"
    if not path.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def start_fresh(module_names: Sequence[str]) -> None:
    """Run the cold start of these already imported modules again, with the environment as it is now.

    Each function reads its settings once, at cold start, as in Lambda; a new stack in the same process
    has a new environment, as a new execution environment would.
    """
    for name in module_names:
        module = sys.modules.get(name)
        if isinstance(module, ModuleType):
            importlib.reload(module)


# --- the stack in a child process ---------------------------------------------------------------------


class StackProcess:
    """`python -m local run` as a child process on free ports; `info` holds what `describe()` returns.

    The test process's environment and imports stay untouched. The child's stdout (the apps' logs) is
    drained by a thread into `log` (or dropped), so it never blocks on a full pipe. `stop()` sends SIGINT,
    as Ctrl-C stops `make run`, and kills the child if it does not exit in time.
    """

    def __init__(
        self,
        *,
        dynamodb_endpoint: str | None = None,
        table_name: str | None = None,
        extra_args: Sequence[str] = (),
        log: TextIO | None = None,
        python: str = sys.executable,
    ):
        self.command = [python, "-m", "local", "run", "--ready-json", "--state-file", ""]
        for option in ("--port-api", "--port-export", "--port-url", "--port-issuer", "--port-aws", "--port-docs"):
            self.command += [option, "0"]
        if dynamodb_endpoint:
            self.command += ["--dynamodb-endpoint", dynamodb_endpoint]
        if table_name:
            self.command += ["--table-name", table_name]
        self.command += list(extra_args)
        self.log = log
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self._ready = threading.Event()
        self._pump: threading.Thread | None = None

    def start(self, *, timeout: float = 60) -> "StackProcess":
        if self.process is not None:
            raise RuntimeError("the stack process is already running")
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log if self.log is not None else None,
            text=True,
        )
        self._pump = threading.Thread(target=self._drain, name="stack-stdout", daemon=True)
        self._pump.start()
        if not self._ready.wait(timeout) or not self.info:
            code = self.stop()
            raise RuntimeError(f"`{shlex.join(self.command)}` was not ready within {timeout} s (exit status {code})")
        return self

    def _drain(self) -> None:
        stdout = self.process.stdout if self.process is not None else None
        for line in stdout or ():
            if not self._ready.is_set() and line.startswith("{"):
                self.info = json.loads(line)
                self._ready.set()
            elif self.log is not None:
                self.log.write(line)
        self._ready.set()  # the child exited: whoever waits stops waiting

    def issuer(self) -> LocalIssuer:
        """An issuer whose tokens this stack accepts (same key file, issuer URL and audience)."""
        return LocalIssuer(Path(self.info["key_path"]), self.info["issuer_url"], self.info["audience"])

    def drain_events(self, timeout: float = 30) -> None:
        """Wait until every S3 upload event so far has reached its function (no sleeping in tests)."""
        endpoint = urlsplit(self.info["aws_endpoint"])
        connection = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port, timeout=timeout + 5)
        try:
            connection.request("POST", DRAIN_PATH)
            response = connection.getresponse()
            if response.status != 200:
                raise TimeoutError(f"upload events not delivered: {response.read()!r}")
        finally:
            connection.close()

    def stop(self, *, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> "StackProcess":
        return self if self.process is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
