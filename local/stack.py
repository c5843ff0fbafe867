"""LocalStack: everything `make run` serves, in this process, on loopback ports (0 picks a free port).

- 3003 the local JWT issuer (discovery document + JWKS);
- 5000 moto (DynamoDB and S3) with every table and bucket of template.yaml (the tables in DynamoDB Local
  instead with `dynamodb_endpoint`); presigned POST policies enforced as S3 does, uploads delivered to the
  functions of the template's EventBridge rules (`stack.events.drain()` waits for those deliveries);
- 3000 the HTTP API emulator, at the root (`api_url`, as `sam local start-api`) and under the stage
  (`api_stage_url`, as on AWS); 3002 the CRUD function's URL; 3001 the streaming app under uvicorn.

The first table and bucket of the template get `table_name` and `bucket_name`, any other that name plus
its logical id. The apps read the environment the template gives them (plus the local values), set in
this process before their modules are (re)loaded, and restored by `stop()`.
"""

import importlib
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import boto3
import jwt
from uvicorn.importer import import_from_string

from local import REPO_ROOT, STATE_DIR, aws, dynamodb_local, roles, secret_file, specs
from local.authorizer import JwtAuthorizer
from local.domain_events import BusTap
from local.gateway import FunctionUrlEmulator, HttpApiEmulator, with_cors
from local.iam_gate import IamGate, stream_arn, usage_endpoint
from local.issuer import DEFAULT_AUDIENCE, DEFAULT_ISSUER_PORT, JWKS_PATH, LocalIssuer, issuer_app
from local.notifications import EventBus, S3Notifications, drain_endpoint
from local.s3_cors import BucketCors
from local.s3_post import PostPolicyGate
from local.server import AsgiServer, HttpServer
from local.specs import FunctionSpec
from local.streams import StreamPoller, enable_stream, stream_mappings
from local.template import DEFAULT_TEMPLATE, FUNCTION, Template, TemplateError
from local.workers import FunctionPool

DEFAULT_STATE_FILE = STATE_DIR / "stack.json"
SRC_DIR = REPO_ROOT / "src"


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    # The issuer and the AWS stand-in also listen here (e.g. Docker's bridge address, for `sam local`'s
    # containers); None: loopback only. Whatever reaches this address reaches them: opt-in only.
    also_listen: str | None = None
    port_api: int = 3000
    port_export: int = 3001
    port_url: int = 3002
    port_issuer: int = DEFAULT_ISSUER_PORT
    port_aws: int = aws.DEFAULT_AWS_PORT
    dynamodb_endpoint: str | None = None  # e.g. DynamoDB Local; None: moto serves the tables too
    issuer_url: str | None = None  # None: http://{host}:{issuer port}
    # An OpenID provider of your own (Auth0, Okta, Entra, Cognito), trusted as deployed: keys found through
    # its discovery document, `iss` compared as written (a trailing slash included); no local issuer runs.
    external_issuer: str | None = None
    audience: str = DEFAULT_AUDIENCE
    table_name: str = "serverless-tasks-local"
    bucket_name: str = "serverless-tasks-local-attachments"
    template_path: Path = DEFAULT_TEMPLATE
    template_parameters: Mapping[str, str] = field(default_factory=dict)
    src_dir: Path = SRC_DIR
    state_dir: Path = STATE_DIR
    environment: Mapping[str, str] = field(default_factory=dict)  # extra variables for the apps, applied last
    access_log: TextIO | None = None  # one line per request (and handler errors) when given
    event_log: TextIO | None = None  # one line per domain event put on the stack's bus when given

    @property
    def key_path(self) -> Path:
        return self.state_dir / "jwt-key.pem"


class LocalStack:
    """Everything `make run` serves, started by `start()` (or `with`), stopped by `stop()`."""

    def __init__(self, options: StackOptions | None = None, **overrides: Any):
        self.options = o = replace(options or StackOptions(), **overrides)
        self.template = Template.load(o.template_path, parameters=o.template_parameters)
        self.tables = _local_names(self.template.logical_ids("AWS::DynamoDB::Table"), o.table_name)
        self.buckets = _local_names(self.template.logical_ids("AWS::S3::Bucket"), o.bucket_name)
        self.event_buses = {  # logical id -> name, as the template names each (moto makes them)
            logical_id: str(self.template.properties(logical_id, "AWS::Events::EventBus")["Name"])
            for logical_id in self.template.logical_ids("AWS::Events::EventBus")
        }
        self.template.resource_names.update({**self.tables, **self.buckets, **self.event_buses})
        self.events: EventBus | None = None  # S3 notifications: `stack.events.drain()` waits for deliveries
        self.streams: list[StreamPoller] = []  # table streams to their functions (event source mappings)
        self.bus_taps: list[BusTap] = []  # the stack's own buses: each event printed and routed to its rules
        self.pools: dict[str, FunctionPool] = {}  # each function's execution environments (worker processes)
        self.dead_letter_queue_url: str | None = None  # where upload events go after the rule's retries
        self._local_values: dict[str, str | None] = {}
        self.started_in: float | None = None
        self.table_name, self.bucket_name = o.table_name, o.bucket_name
        self._servers: list[Any] = []
        self._saved_environment: dict[str, str | None] = {}

    def start(self) -> "LocalStack":
        if self._servers:
            raise RuntimeError("the stack is already running")
        began = time.monotonic()
        try:
            self._bind()
            self._start_aws()
            self._configure()
            self._start_apps()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop everything, promptly: event deliveries first (no new attempt), then the functions (an
        invocation in flight ends now, not at its function's Timeout), then the servers."""
        for source in [*self.streams, *([self.events] if self.events else []), *(tap.rules for tap in self.bus_taps)]:
            source.stop()
        for pool in self.pools.values():
            pool.stop()
        self.pools = {}
        for poller in self.streams:
            poller.join()
        self.streams, self.events, self.bus_taps = [], None, []
        for server in reversed(self._servers):
            with suppress(Exception):
                server.stop()
        self._servers = []
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}
        _forget_default_session()

    def __enter__(self) -> "LocalStack":
        return self if self._servers else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return self._api.url

    @property
    def local_jwks_url(self) -> str | None:
        """Where this stack's own verifiers fetch the local issuer's keys: its loopback address, whatever name
        the issuer has (e.g. http://host.docker.internal:3003, which only containers resolve on Linux).
        None with an external issuer."""
        return None if self._issuer_server is None else self._issuer_server.url + JWKS_PATH

    @property
    def api_stage_url(self) -> str:
        return self._api.url + self._stage_prefix

    def describe(self) -> dict[str, Any]:
        """Everything a client of the stack needs, JSON-ready (what `run` writes to .local/stack.json)."""
        return {
            "pid": os.getpid(),
            "api_url": self.api_url,
            "api_stage_url": self.api_stage_url,
            "export_url": self.export_url,
            "function_url": self.function_url,
            "issuer_url": self.issuer_url,
            "also_listen": self.options.also_listen,
            "audience": self.options.audience,
            "key_path": str(self.options.key_path) if self.issuer is not None else None,
            "aws_endpoint": self.aws_endpoint,
            "dynamodb_endpoint": self.dynamodb_endpoint,
            "table_name": self.table_name,
            "bucket_name": self.bucket_name,
            "resource_names": self.template.resource_names,
            "dead_letter_queue_url": self.dead_letter_queue_url,
            "started_in_seconds": round(self.started_in or 0, 3),
        }

    # -- startup steps

    def _bind(self) -> None:
        """Take every port first, so a taken one fails before anything starts."""
        o = self.options
        self._issuer_server = None
        if not o.external_issuer:
            self._issuer_server = self._bound(HttpServer(None, o.host, o.port_issuer, name="JWT issuer"))
        self._moto = self._bound(aws.MotoServer(o.host, o.port_aws))
        self._api = self._bound(HttpServer(None, o.host, o.port_api, name="HTTP API", access_log=o.access_log))
        self._url = self._bound(HttpServer(None, o.host, o.port_url, name="function URL", access_log=o.access_log))
        self._export = self._bound(
            AsgiServer(None, o.host, o.port_export, name="streaming app", access_log=o.access_log)
        )
        self._issuer_also = self._moto_also = None
        if o.also_listen:  # the same ports, so one URL naming the host works on both addresses
            if self._issuer_server is not None:
                port = self._issuer_server.port
                self._issuer_also = self._bound(HttpServer(None, o.also_listen, port, name="JWT issuer"))
            port = self._moto.port
            self._moto_also = self._bound(HttpServer(self._moto.serve, o.also_listen, port, name="AWS stand-in"))
        self._dynamodb_gate = (
            self._bound(HttpServer(None, o.host, 0, name="DynamoDB Local behind IAM")) if o.dynamodb_endpoint else None
        )
        self.aws_endpoint, self.function_url, self.export_url = self._moto.url, self._url.url, self._export.url
        self.dynamodb_endpoint = self._dynamodb_gate.url if self._dynamodb_gate else self.aws_endpoint

    def _bound(self, server: Any) -> Any:
        self._servers.append(server)
        return server

    def _start_aws(self) -> None:
        o = self.options
        self.issuer: LocalIssuer | None = None  # None with an external issuer: its tokens come from it
        if self._issuer_server is None:
            self.issuer_url = str(o.external_issuer)
        else:
            self.issuer = LocalIssuer(o.key_path, o.issuer_url or self._issuer_server.url, o.audience)
            self.issuer_url = self.issuer.issuer
        for server in (self._issuer_server, self._issuer_also):
            if server is not None and self.issuer is not None:
                server.app = issuer_app(self.issuer)
                server.start()
        keys = [aws.LOCAL_ACCESS_KEY_ID, *map(roles.access_key_id, self.template.logical_ids(FUNCTION))]
        self._moto.gates.append(PostPolicyGate(dict.fromkeys(keys, aws.LOCAL_SECRET_ACCESS_KEY)))
        self.iam = IamGate({}, admin_keys=[aws.LOCAL_ACCESS_KEY_ID])  # the roles once the tables exist
        self._moto.gates.append(self.iam)
        self._moto.start()
        if self._moto_also is not None:
            self._moto_also.start()
        if o.dynamodb_endpoint and self._dynamodb_gate:
            dynamodb_local.wait_for_dynamodb(o.dynamodb_endpoint, timeout=10)
            self._dynamodb_gate.app = aws.GatedProxy(o.dynamodb_endpoint, [self.iam])
            self._dynamodb_gate.start()
        dynamodb, s3 = aws.client("dynamodb", self.dynamodb_endpoint), aws.client("s3", self.aws_endpoint)
        for logical_id, name in self.tables.items():
            aws.create_table(dynamodb, self.template, name, logical_id)
        streams = {
            logical_id: stream_arn(table["LatestStreamArn"])
            for logical_id, name in self.tables.items()
            if "LatestStreamArn" in (table := dynamodb.describe_table(TableName=name)["Table"])
        }
        self.iam.roles = roles.roles(self.template, stream_arns=streams)
        events = aws.client("events", self.aws_endpoint)
        for name in self.event_buses.values():
            events.create_event_bus(Name=name)
        for logical_id, name in self.buckets.items():
            aws.create_bucket(s3, self.template, name, logical_id)
            self._moto.observers.append(BucketCors(name, aws.bucket_cors_rules(self.template, logical_id)).decorate)

    def _configure(self) -> None:
        """The local values every function gets. The streaming app is served in this process: its variables
        go into os.environ (restored by `stop()`) and its module is loaded again, as a new execution
        environment runs the cold start again."""
        o = self.options
        self.functions = specs.functions(self.template)
        self._local_values = {
            "JWT_ISSUER": self.issuer_url,
            "JWT_AUDIENCE": o.audience,
            "JWKS_URL": self.local_jwks_url,  # None (unset) with an external issuer: discovery, as deployed
            "CURSOR_SECRET": cursor_secret(o.state_dir),
            "POWERTOOLS_TRACE_DISABLED": "true",
            **aws.local_aws_environment(dynamodb_endpoint=self.dynamodb_endpoint, s3_endpoint=self.aws_endpoint),
        }
        module, streaming = self._streaming_app()
        for name, value in self._environment(streaming).items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if str(o.src_dir) not in sys.path:
            sys.path.insert(0, str(o.src_dir))
        module_name = module.partition(":")[0]
        if module_name in sys.modules:
            _forget_default_session()
            importlib.reload(sys.modules[module_name])

    def _environment(self, spec: FunctionSpec) -> dict[str, str | None]:
        """A function's variables locally: the template's, then the local values (None: unset)."""
        own = {name: value for name, value in spec.environment.items() if not name.startswith(("AWS_", "_"))}
        credentials = {"AWS_ACCESS_KEY_ID": roles.access_key_id(spec.logical_id)}  # its role's, see iam_gate
        return {**own, **self._local_values, **credentials, **self.options.environment}

    def _start_apps(self) -> None:
        o = self.options
        apis = specs.http_apis(self.template)
        if len(apis) != 1:
            raise TemplateError(f"expected one HTTP API in the template, found {sorted(apis) or 'none'}")
        (api,) = apis.values()
        self._stage_prefix = "" if api.stage == "$default" else f"/{api.stage}"
        function = self._pool
        routed = sorted({route.function for route in api.routes})
        jwks = self.local_jwks_url
        keys = jwt.PyJWKClient(jwks, lifespan=300, cooldown_duration=5, timeout=3) if jwks else None
        authorizer = JwtAuthorizer(self.issuer_url, o.audience, keys)
        self._api.app = HttpApiEmulator(api, {name: function(name) for name in routed}, authorizer, log=o.access_log)
        crud = [self.functions[name] for name in routed if self.functions[name].url is not None]
        if len(crud) != 1:
            found = [spec.logical_id for spec in crud] or "none"
            raise TemplateError(f"expected one function with HttpApi routes and a function URL, found {found}")
        self._url.app = FunctionUrlEmulator(function(crud[0].logical_id), crud[0].url, log=o.access_log)
        module, streaming = self._streaming_app()
        _forget_default_session()
        app = import_from_string(module)
        _forget_default_session()
        cors = streaming.url.cors if streaming.url is not None else None
        self._export.app = app if cors is None else with_cors(app, cors)
        self.events = self._event_bus()
        self.bus_taps = self._bus_taps()
        self.streams = self._stream_pollers()
        drained = [*([self.events] if self.events else []), *self.streams, *self.bus_taps]
        self._moto.gates.append(drain_endpoint(drained))
        self._moto.gates.append(usage_endpoint(self.iam))
        for server in (self._api, self._url, self._export):
            server.start()

    def _pool(self, logical_id: str) -> FunctionPool:
        """The function's execution environments (one pool per function, shared by every entry point)."""
        if logical_id not in self.pools:
            environment = self._environment(self.functions[logical_id])
            variables = {name: value for name, value in environment.items() if value is not None}
            self.pools[logical_id] = FunctionPool.from_template(
                self.template, logical_id, variables, self.options.src_dir
            )
        return self.pools[logical_id]

    def _event_bus(self) -> EventBus | None:
        """The template's EventBridge rules, fed with `Object Created` events of the buckets that enable them."""
        rules = [rule for rule in specs.event_rules(self.template) if rule.bus is None]
        buckets = [name for logical_id, name in self.buckets.items() if aws.sends_events(self.template, logical_id)]
        if not rules or not buckets:
            return None
        functions = {rule.function: self._pool(rule.function) for rule in rules}
        bus = EventBus(rules, functions, aws.client("sqs", self.aws_endpoint), log=self.options.access_log)
        self.dead_letter_queue_url = next((queue.url for queue in bus.dead_letters.values()), None)
        s3 = aws.client("s3", self.aws_endpoint)
        self._moto.observers.append(S3Notifications(buckets, bus, s3).observe)
        return bus

    def _bus_taps(self) -> list[BusTap]:
        """The template's own buses: what functions put on them is printed and delivered to their rules."""
        taps = []
        for logical_id, name in self.event_buses.items():
            rules = [rule for rule in specs.event_rules(self.template) if rule.bus == logical_id]
            functions = {rule.function: self._pool(rule.function) for rule in rules}
            sqs = aws.client("sqs", self.aws_endpoint)
            bus = EventBus(rules, functions, sqs, log=self.options.access_log)
            taps.append(BusTap(name, bus, log=self.options.event_log))
            self._moto.observers.append(taps[-1].observe)
        return taps

    def _stream_pollers(self) -> list[StreamPoller]:
        """The template's stream event source mappings, polling the local tables' streams."""
        dynamodb = aws.client("dynamodb", self.dynamodb_endpoint)
        sqs = aws.client("sqs", self.aws_endpoint)
        pollers = []
        for mapping in stream_mappings(self.template):
            # Lambda reads the stream and sends to the OnFailure destination with the function's role.
            role_key = roles.access_key_id(mapping.function)
            streams = aws.client("dynamodbstreams", self.dynamodb_endpoint, access_key_id=role_key)
            sender = aws.client("sqs", self.aws_endpoint, access_key_id=role_key)
            table = self.template.properties(mapping.table, "AWS::DynamoDB::Table")
            view_type = str((table.get("StreamSpecification") or {}).get("StreamViewType", "KEYS_ONLY"))
            arn = enable_stream(dynamodb, self.tables[mapping.table], view_type)
            poller = StreamPoller(
                mapping, self._pool(mapping.function), streams, arn, sqs, sender=sender, log=self.options.access_log
            )
            pollers.append(poller.start())
        return pollers

    def _streaming_app(self) -> tuple[str, FunctionSpec]:
        """`module:app` from the run.sh of the function whose URL streams (`exec ... uvicorn streaming.app:app`)."""
        for spec in self.functions.values():
            script = self.options.src_dir / spec.handler
            if spec.url and spec.url.invoke_mode == "RESPONSE_STREAM" and script.is_file():
                found = re.search(r"uvicorn\b[^\n]*?\s([A-Za-z_][\w.]*:[A-Za-z_]\w*)", script.read_text())
                if found:
                    return found.group(1), spec
        raise TemplateError("no function with a RESPONSE_STREAM URL whose handler script runs uvicorn")


def cursor_secret(state_dir: Path = STATE_DIR) -> str:
    """The local CURSOR_SECRET: made once, kept in .local/cursor-secret (mode 0600)."""
    return secret_file(state_dir / "cursor-secret", lambda: secrets.token_urlsafe(48).encode()).decode().strip()


def _local_names(logical_ids: list[str], first: str) -> dict[str, str]:
    return {
        logical_id: first if index == 0 else f"{first}-{logical_id.lower()}"
        for index, logical_id in enumerate(logical_ids)
    }


def _forget_default_session() -> None:
    """boto3's default session keeps the credentials it first read from the environment: the streaming app,
    built in this process, must sign with its function's key (set in os.environ just before), and code that
    runs after it (or after the stack stops) with whatever the environment says then, not the app's key."""
    boto3.DEFAULT_SESSION = None
