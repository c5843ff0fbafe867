"""What the local stack reads from template.yaml, as plain data: functions, their events, the HTTP API."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME
from local.template import FUNCTION, Template, TemplateError, Unresolved, as_text, merge, require_resolved, truthy


@dataclass(frozen=True)
class CorsConfig:
    """HTTP API `CorsConfiguration` or function URL `Cors`, same fields in both."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class JwtAuthorizerSpec:
    name: str
    identity_header: str  # from IdentitySource `$request.header.Authorization`


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    function: str
    authorizer: JwtAuthorizerSpec | None

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    routes: tuple[ApiRoute, ...]
    cors: CorsConfig | None
    stage: str = "$default"  # a named stage is the first path segment of every URL, as on AWS


@dataclass(frozen=True)
class FunctionUrlSpec:
    auth_type: str
    invoke_mode: str
    cors: CorsConfig | None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]  # resolvable values only; references to deployed resources are left out
    url: FunctionUrlSpec | None
    properties: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{self.name}"


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failing delivery is retried: an EventBridge rule's RetryPolicy (its defaults: 185 retries
    within 24 hours), or an event source mapping's MaximumRetryAttempts (a stream keeps records 24 hours)."""

    maximum_retry_attempts: int = 185
    maximum_event_age_seconds: int = 86400


@dataclass(frozen=True)
class EventRuleSpec:
    """A function's `Type: EventBridgeRule` event: the pattern (resolved), the function it invokes, how long
    a failing delivery is retried, and the logical id of its DeadLetterConfig queue."""

    name: str
    function: str
    pattern: Mapping[str, Any]
    retry_policy: RetryPolicy = RetryPolicy()
    dead_letter_queue: str | None = None
    bus: str | None = None  # logical id of its EventBusName's bus (`!Ref X`); None: the account's default bus


def function(template: Template, logical_id: str) -> FunctionSpec:
    raw = template.function_properties(logical_id)
    where = f"{logical_id}.Properties"
    name = template.resolve(raw.get("FunctionName"), where)
    variables = template.resolve(
        (raw.get("Environment") or {}).get("Variables") or {}, f"{where}.Environment.Variables"
    )
    url = None
    if raw.get("FunctionUrlConfig"):
        config = template.resolve(raw["FunctionUrlConfig"], f"{where}.FunctionUrlConfig")
        url = FunctionUrlSpec(
            config.get("AuthType", "AWS_IAM"), config.get("InvokeMode", "BUFFERED"), _cors(config.get("Cors"))
        )
    return FunctionSpec(
        logical_id=logical_id,
        name=name if isinstance(name, str) else f"{LOCAL_STACK_NAME}-{logical_id}",
        handler=str(template.resolve(raw.get("Handler", ""), where)),
        timeout_seconds=int(template.resolve(raw.get("Timeout", 3), where)),
        memory_mb=int(template.resolve(raw.get("MemorySize", 128), where)),
        environment={k: as_text(v) for k, v in variables.items() if not isinstance(v, Unresolved)},
        url=url,
        properties=raw,
    )


def functions(template: Template) -> dict[str, FunctionSpec]:
    return {name: function(template, name) for name in template.logical_ids(FUNCTION)}


def _events(template: Template, kind: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for function_id in template.logical_ids(FUNCTION):
        for event_name, event in (template.function_properties(function_id).get("Events") or {}).items():
            if event.get("Type") == kind:
                yield function_id, f"{function_id}.Events.{event_name}", event.get("Properties") or {}


def event_rules(template: Template) -> list[EventRuleSpec]:
    """Every `Type: EventBridgeRule` event of every function (the pattern must resolve locally)."""
    rules = []
    for function_id, where, properties in _events(template, "EventBridgeRule"):
        pattern = template.resolve(properties.get("Pattern") or {}, f"{where}.Pattern")
        require_resolved(pattern, f"the pattern of {where}")
        retries = template.resolve(properties.get("RetryPolicy") or {}, f"{where}.RetryPolicy")
        policy = RetryPolicy(
            int(retries.get("MaximumRetryAttempts", RetryPolicy.maximum_retry_attempts)),
            int(retries.get("MaximumEventAgeInSeconds", RetryPolicy.maximum_event_age_seconds)),
        )
        queue = queue_logical_id((properties.get("DeadLetterConfig") or {}).get("Arn"))
        bus = properties.get("EventBusName")
        bus_id = str(bus["Ref"]) if isinstance(bus, dict) and "Ref" in bus else None
        if bus is not None and bus_id is None:
            raise TemplateError(f"{where}: EventBusName must be `!Ref` of a bus of the template locally")
        rules.append(EventRuleSpec(where.replace(".Events.", "."), function_id, pattern, policy, queue, bus_id))
    return rules


def queue_logical_id(arn: Any) -> str | None:
    """`Queue` from a queue's ARN written `!GetAtt Queue.Arn` (None for anything else)."""
    return str(arn["Fn::GetAtt"][0]) if isinstance(arn, dict) and "Fn::GetAtt" in arn else None


def http_api_routes(template: Template | None = None) -> list[ApiRoute]:
    """Every `Type: HttpApi` event of every HTTP API."""
    return [route for api in http_apis(template or Template.load()).values() for route in api.routes]


def http_apis(template: Template) -> dict[str, HttpApiSpec]:
    """Each HTTP API with its routes, their JWT authorizer, and its CORS configuration (scopes: not emulated)."""
    routes: dict[str, list[ApiRoute]] = {}
    for function_id, where, raw in _events(template, "HttpApi"):
        if "Path" not in raw or "Method" not in raw:
            raise TemplateError(f"{where}: an HttpApi event needs Path and Method (no $default route locally)")
        api_ref = raw.get("ApiId")
        if not isinstance(api_ref, dict) or "Ref" not in api_ref:
            raise TemplateError(f"{where}: ApiId must be a !Ref to an AWS::Serverless::HttpApi")
        api_id, properties = str(api_ref["Ref"]), template.resolve(raw, where)
        api = _http_api(template, api_id)
        auth = properties.get("Auth") or {}
        authorizer_name = auth.get("Authorizer") or (api.get("Auth") or {}).get("DefaultAuthorizer")
        authorizer = None
        if authorizer_name and authorizer_name != "NONE":
            authorizer = _jwt_authorizer(api_id, api, str(authorizer_name))
        method, path = str(properties["Method"]).upper(), str(properties["Path"])
        routes.setdefault(api_id, []).append(ApiRoute(method, path, function_id, authorizer))
    specs = {}
    for api_id, api_routes in routes.items():
        properties = _http_api(template, api_id)
        stage = properties.get("StageName") or "$default"
        require_resolved(stage, f"the StageName of {api_id}")
        specs[api_id] = HttpApiSpec(api_id, tuple(api_routes), _cors(properties.get("CorsConfiguration")), stage)
    return specs


def _http_api(template: Template, api_id: str) -> dict[str, Any]:
    body = template.resources.get(api_id) or {}
    if body.get("Type") != "AWS::Serverless::HttpApi":
        raise TemplateError(f"{api_id} is not an AWS::Serverless::HttpApi")
    own = body.get("Properties") or {}
    return dict(template.resolve(merge((template.document.get("Globals") or {}).get("HttpApi") or {}, own), api_id))


def _jwt_authorizer(api_id: str, api: Mapping[str, Any], name: str) -> JwtAuthorizerSpec:
    spec = ((api.get("Auth") or {}).get("Authorizers") or {}).get(name)
    if spec is None or "JwtConfiguration" not in spec:
        raise TemplateError(f"{api_id} authorizer {name}: only JWT authorizers declared on the API are emulated")
    source = spec.get("IdentitySource", "$request.header.Authorization")
    source = str(source[0] if isinstance(source, list) else source)
    if not source.startswith("$request.header."):
        raise TemplateError(f"{api_id} authorizer {name}: identity source {source} is not a header")
    header = source.removeprefix("$request.header.").lower()
    return JwtAuthorizerSpec(name, header)


def _cors(value: Any) -> CorsConfig | None:
    if not value:
        return None
    require_resolved(value, "a CORS configuration")

    def strings(key: str, convert: Any = str) -> tuple[str, ...]:
        items = value.get(key) or ()
        return tuple(convert(str(item)) for item in ([items] if isinstance(items, str) else items))

    return CorsConfig(
        allow_origins=strings("AllowOrigins"),
        allow_methods=strings("AllowMethods", str.upper),
        allow_headers=strings("AllowHeaders", str.lower),
        expose_headers=strings("ExposeHeaders", str.lower),
        max_age=int(value["MaxAge"]) if value.get("MaxAge") is not None else None,
        allow_credentials=truthy(value.get("AllowCredentials", False)),
    )
