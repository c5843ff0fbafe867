"""template.yaml as data: the local stack and the tests build what the template declares, nothing hard-coded.

CloudFormation short tags (`!Ref`, `!Sub`, `!If`, ...) load as their long forms (`{"Ref": ...}`,
`{"Fn::Sub": ...}`). `Template.resolve` evaluates what can be known without a deployed stack:
parameters (defaults, or overrides), pseudo parameters, conditions, `Fn::If/Sub/Join/Select/Split/
FindInMap`. A reference to a resource (`!Ref Table`, `!GetAtt Role.Arn`) resolves to an `Unresolved`
marker, which callers drop or replace with the local value.

Loading has no side effects and needs only PyYAML, so tests can call `table_definition()` freely.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

LOCAL_STACK_NAME = "serverless-tasks-local"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"

IMPLICIT_HTTP_API = "ServerlessHttpApi"  # the logical id SAM gives the API of events without ApiId


class TemplateError(Exception):
    """template.yaml does not hold what the local stack needs."""


class Unresolved:
    """An intrinsic function that only a deployed stack can evaluate (a resource's Ref or attribute)."""

    def __init__(self, expression: Any):
        self.expression = expression

    def __repr__(self) -> str:
        return f"Unresolved({self.expression!r})"


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


# --- YAML --------------------------------------------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads CloudFormation's short-form intrinsic function tags."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path} does not exist")
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506 - safe loader subclass
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


# --- what the local stack reads ------------------------------------------------------------------------


class RouteSpec(NamedTuple):
    """One `Type: HttpApi` event: `GET /tasks/{taskId}` goes to `CrudFunction` (`tasks.app.lambda_handler`)."""

    method: str
    path: str
    function: str
    handler: str


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
    scopes: tuple[str, ...] = ()  # the authorizer's default AuthorizationScopes


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    function: str
    authorizer: JwtAuthorizerSpec | None
    scopes: tuple[str, ...] = ()
    timeout_ms: int = 30_000

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
    environment: Mapping[str, str]  # resolvable values only; resource references are left out
    url: FunctionUrlSpec | None
    properties: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{self.name}"


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    versioning: bool
    cors_rules: tuple[dict[str, Any], ...]  # boto3 `put_bucket_cors` CORSRules
    encryption_rules: tuple[dict[str, Any], ...]  # boto3 `put_bucket_encryption` Rules
    public_access_block: Mapping[str, bool] | None
    eventbridge: bool = False  # NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled


@dataclass(frozen=True)
class EventRuleSpec:
    """A function's `Type: EventBridgeRule` event: the pattern (resolved) and the function it invokes."""

    name: str
    function: str
    pattern: Mapping[str, Any]


# --- the template ------------------------------------------------------------------------------------

_PSEUDO = {
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


class Template:
    """A parsed template plus the parameter values it is evaluated with."""

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = LOCAL_STACK_NAME,
        resource_names: Mapping[str, str] | None = None,
    ):
        """`resource_names`: what `!Ref` of a resource gives locally, e.g. {"TasksTable": "tasks-local"}."""
        self.document = document
        self.stack_name = stack_name
        self.resource_names = dict(resource_names or {})
        self._overrides = dict(parameters or {})
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TEMPLATE, **kwargs: Any) -> "Template":
        return cls(load_yaml(path), **kwargs)

    # -- sections

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.document.get("Resources") or {}

    def resources_of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {name: body for name, body in self.resources.items() if body.get("Type") == resource_type}

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """Parameter values: overrides, else defaults. CommaDelimitedList values are lists."""
        values: dict[str, Any] = {}
        for name, spec in (self.document.get("Parameters") or {}).items():
            raw = self._overrides.get(name, spec.get("Default"))
            if raw is None:
                continue
            if isinstance(raw, bool):
                raw = "true" if raw else "false"
            kind = str(spec.get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                values[name] = [item.strip() for item in str(raw).split(",")] if str(raw) else []
            else:
                values[name] = str(raw)
        return values

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.document.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name} is not defined")
        if name in self._evaluating:
            raise TemplateError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        try:
            value = self.resolve(conditions[name])
        finally:
            self._evaluating.discard(name)
        if not isinstance(value, bool):
            raise TemplateError(f"condition {name} does not evaluate to true or false locally: {value!r}")
        self._conditions[name] = value
        return value

    def resource_exists(self, name: str) -> bool:
        body = self.resources.get(name)
        return body is not None and ("Condition" not in body or self.condition(str(body["Condition"])))

    # -- intrinsic functions

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsic functions where the template alone decides the value."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::StackName":
            return self.stack_name
        if name == "AWS::StackId":
            return f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{self.stack_name}/local"
        if name in _PSEUDO:
            return _PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resource_names:
            return self.resource_names[name]
        return Unresolved({"Ref": name})

    def _function(self, name: str, argument: Any) -> Any:
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(str(condition)) else when_false)
        if name == "Equals":
            left, right = (self.resolve(item) for item in argument)
            if isinstance(left, Unresolved) or isinstance(right, Unresolved):
                return Unresolved({"Fn::Equals": argument})
            return _scalar_text(left) == _scalar_text(right)
        if name == "Not":
            (inner,) = argument
            value = self.resolve(inner)
            return value if isinstance(value, Unresolved) else not value
        if name in ("And", "Or"):
            values = [self.resolve(item) for item in argument]
            if any(isinstance(item, Unresolved) for item in values):
                return Unresolved({f"Fn::{name}": argument})
            return all(values) if name == "And" else any(values)
        if name == "Sub":
            return self._sub(argument)
        if name == "Join":
            delimiter, items = argument
            values = self.resolve(items)
            if isinstance(values, Unresolved) or any(isinstance(item, Unresolved) for item in values):
                return Unresolved({"Fn::Join": argument})
            return str(delimiter).join(_scalar_text(item) for item in values)
        if name == "Select":
            index, items = (self.resolve(item) for item in argument)
            if isinstance(items, Unresolved) or isinstance(index, Unresolved):
                return Unresolved({"Fn::Select": argument})
            return items[int(index)]
        if name == "Split":
            delimiter, text = argument
            resolved = self.resolve(text)
            if isinstance(resolved, Unresolved):
                return Unresolved({"Fn::Split": argument})
            return str(resolved).split(str(delimiter))
        if name == "FindInMap":
            map_name, first, second, *_ = (self.resolve(item) for item in argument)
            mappings = self.document.get("Mappings") or {}
            try:
                return self.resolve(mappings[map_name][first][second])
            except (KeyError, TypeError) as exc:
                raise TemplateError(f"Fn::FindInMap {argument!r} has no value") from exc
        # GetAtt, ImportValue, GetAZs, Cidr, Base64 of resource values...: a deployed stack's business.
        return Unresolved({f"Fn::{name}": argument})

    def _sub(self, argument: Any) -> Any:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in (argument[1] or {}).items()}
        else:
            text, variables = argument, {}
        unresolved = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal unresolved
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = Unresolved({"Fn::GetAtt": name.split(".", 1)})
            else:
                value = self._ref(name)
            if isinstance(value, Unresolved):
                unresolved = True
                return ""
            return _scalar_text(value)

        result = _SUB_VARIABLE.sub(substitute, str(text))
        return Unresolved({"Fn::Sub": argument}) if unresolved else result

    # -- DynamoDB

    def table_logical_id(self, logical_id: str | None = None) -> str:
        return self._single("AWS::DynamoDB::Table", logical_id)

    def table_definition(self, logical_id: str | None = None, *, table_name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for boto3 `create_table`, from the table's own definition.

        Properties `create_table` does not take (TTL, PITR, SSE, deletion protection, tags, ...) are left
        out; `time_to_live()` gives the TTL specification for `update_time_to_live`.
        """
        name = self.table_logical_id(logical_id)
        properties = self.resolve(self.resources[name].get("Properties") or {})
        definition: dict[str, Any] = {key: properties[key] for key in _TABLE_KEYS if key in properties}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if properties.get(key):
                definition[key] = [{k: index[k] for k in _INDEX_KEYS if k in index} for index in properties[key]]
        definition.setdefault("BillingMode", "PROVISIONED")
        if definition["BillingMode"] == "PAY_PER_REQUEST":
            definition.pop("ProvisionedThroughput", None)
            for index in definition.get("GlobalSecondaryIndexes", []):
                index.pop("ProvisionedThroughput", None)
        _require_resolved(definition, f"table {name}")
        definition = _integers(definition, ("ReadCapacityUnits", "WriteCapacityUnits"))
        if table_name is not None:
            definition = {"TableName": table_name, **definition}
        return definition

    def time_to_live(self, logical_id: str | None = None) -> dict[str, Any] | None:
        """The table's `TimeToLiveSpecification` (boto3 shape), or None."""
        name = self.table_logical_id(logical_id)
        spec = self.resolve((self.resources[name].get("Properties") or {}).get("TimeToLiveSpecification"))
        if not spec or not spec.get("AttributeName"):
            return None
        return {"AttributeName": spec["AttributeName"], "Enabled": _truthy(spec.get("Enabled", True))}

    # -- S3

    def bucket(self, logical_id: str | None = None) -> BucketSpec:
        name = self._single("AWS::S3::Bucket", logical_id)
        properties = self.resolve(self.resources[name].get("Properties") or {})
        versioning = (properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled"
        cors_rules = []
        for rule in (properties.get("CorsConfiguration") or {}).get("CorsRules") or []:
            converted = {
                "ID": rule.get("Id"),
                "AllowedHeaders": rule.get("AllowedHeaders"),
                "AllowedMethods": rule.get("AllowedMethods"),
                "AllowedOrigins": rule.get("AllowedOrigins"),
                "ExposeHeaders": rule.get("ExposedHeaders"),
                "MaxAgeSeconds": int(rule["MaxAge"]) if rule.get("MaxAge") is not None else None,
            }
            cors_rules.append({key: value for key, value in converted.items() if value is not None})
        encryption = []
        for rule in (properties.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") == "AES256":  # a KMS key is the deployed stack's business
                encryption.append({"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})
        block = properties.get("PublicAccessBlockConfiguration")
        public_access_block = {key: _truthy(value) for key, value in block.items()} if block else None
        notifications = (properties.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
        eventbridge = _truthy(notifications.get("EventBridgeEnabled", False))
        spec = BucketSpec(name, versioning, tuple(cors_rules), tuple(encryption), public_access_block, eventbridge)
        _require_resolved(spec.cors_rules, f"the CORS rules of bucket {name}")
        return spec

    def bucket_cors(self, logical_id: str | None = None) -> list[dict[str, Any]]:
        return list(self.bucket(logical_id).cors_rules)

    # -- functions

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's Properties with `Globals.Function` merged in, intrinsics not yet resolved."""
        body = self.resources.get(logical_id)
        if body is None or body.get("Type") != "AWS::Serverless::Function":
            raise TemplateError(f"{logical_id} is not an AWS::Serverless::Function")
        global_properties = (self.document.get("Globals") or {}).get("Function") or {}
        return _merge(global_properties, body.get("Properties") or {})

    def function(self, logical_id: str) -> FunctionSpec:
        raw = self.function_properties(logical_id)
        name = self.resolve(raw.get("FunctionName"))
        if not isinstance(name, str):
            name = f"{self.stack_name}-{logical_id}"
        environment = {}
        for key, value in (self.resolve((raw.get("Environment") or {}).get("Variables")) or {}).items():
            if not isinstance(value, Unresolved):
                environment[key] = _scalar_text(value)
        url = None
        if raw.get("FunctionUrlConfig"):
            url_config = self.resolve(raw["FunctionUrlConfig"])
            url = FunctionUrlSpec(
                auth_type=str(url_config.get("AuthType", "AWS_IAM")),
                invoke_mode=str(url_config.get("InvokeMode", "BUFFERED")),
                cors=_cors(url_config.get("Cors")),
            )
        return FunctionSpec(
            logical_id=logical_id,
            name=name,
            handler=str(self.resolve(raw.get("Handler", ""))),
            timeout_seconds=int(self.resolve(raw.get("Timeout", 3))),
            memory_mb=int(self.resolve(raw.get("MemorySize", 128))),
            environment=environment,
            url=url,
            properties=raw,
        )

    def functions(self) -> dict[str, FunctionSpec]:
        return {
            name: self.function(name)
            for name in self.resources_of_type("AWS::Serverless::Function")
            if self.resource_exists(name)
        }

    def event_rules(self) -> list[EventRuleSpec]:
        """Every `Type: EventBridgeRule` event of every function (the pattern must resolve locally)."""
        rules = []
        for function_id in self.resources_of_type("AWS::Serverless::Function"):
            if not self.resource_exists(function_id):
                continue
            for event_name, event in (self.function_properties(function_id).get("Events") or {}).items():
                if event.get("Type") != "EventBridgeRule":
                    continue
                pattern = self.resolve((event.get("Properties") or {}).get("Pattern") or {})
                _require_resolved(pattern, f"the pattern of {function_id}.Events.{event_name}")
                rules.append(EventRuleSpec(f"{function_id}.{event_name}", function_id, pattern))
        return rules

    # -- HTTP API

    def http_api_routes(self) -> list[RouteSpec]:
        """Every `Type: HttpApi` event as (method, path, function logical id, handler)."""
        routes = []
        for function_id, _, properties in self._http_api_events():
            handler = str(self.resolve(self.function_properties(function_id).get("Handler", "")))
            routes.append(RouteSpec(str(properties["Method"]).upper(), str(properties["Path"]), function_id, handler))
        return routes

    def http_apis(self) -> dict[str, HttpApiSpec]:
        """Each HTTP API with its routes, their JWT authorizer and scopes, and its CORS configuration."""
        routes: dict[str, list[ApiRoute]] = {}
        for function_id, api_id, properties in self._http_api_events():
            api = self._http_api_properties(api_id)
            auth = self.resolve(properties.get("Auth") or {})
            authorizer_name = auth.get("Authorizer") or (api.get("Auth") or {}).get("DefaultAuthorizer")
            authorizer = None
            if authorizer_name and authorizer_name != "NONE":
                authorizer = self._jwt_authorizer(api_id, api, str(authorizer_name))
            scopes = tuple(auth.get("AuthorizationScopes") or (authorizer.scopes if authorizer else ()))
            timeout = int(self.resolve(properties.get("TimeoutInMillis", 30_000)))
            route = ApiRoute(
                method=str(self.resolve(properties["Method"])).upper(),
                path=str(self.resolve(properties["Path"])),
                function=function_id,
                authorizer=authorizer,
                scopes=scopes,
                timeout_ms=timeout,
            )
            routes.setdefault(api_id, []).append(route)
        specs = {}
        for api_id, api_routes in routes.items():
            properties = self._http_api_properties(api_id)
            stage = properties.get("StageName") or "$default"
            _require_resolved(stage, f"the StageName of {api_id}")
            cors = _cors(properties.get("CorsConfiguration"))
            specs[api_id] = HttpApiSpec(api_id, tuple(api_routes), cors, str(stage))
        return specs

    def _http_api_events(self) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        for function_id in self.resources_of_type("AWS::Serverless::Function"):
            if not self.resource_exists(function_id):
                continue
            for event_name, event in (self.function_properties(function_id).get("Events") or {}).items():
                if event.get("Type") != "HttpApi":
                    continue
                properties = event.get("Properties") or {}
                if "Path" not in properties or "Method" not in properties:
                    raise TemplateError(
                        f"{function_id}.Events.{event_name}: an HttpApi event needs Path and Method "
                        "(a catch-all $default route is not emulated)"
                    )
                api_ref = properties.get("ApiId")
                if api_ref is None:
                    api_id = IMPLICIT_HTTP_API
                elif isinstance(api_ref, dict) and "Ref" in api_ref:
                    api_id = str(api_ref["Ref"])
                else:
                    raise TemplateError(f"{function_id}.Events.{event_name}: ApiId must be a !Ref to an HttpApi")
                yield function_id, api_id, properties

    def _http_api_properties(self, api_id: str) -> dict[str, Any]:
        global_properties = (self.document.get("Globals") or {}).get("HttpApi") or {}
        if api_id == IMPLICIT_HTTP_API:
            own: Mapping[str, Any] = {}
        else:
            body = self.resources.get(api_id)
            if body is None or body.get("Type") != "AWS::Serverless::HttpApi":
                raise TemplateError(f"{api_id} is not an AWS::Serverless::HttpApi")
            own = body.get("Properties") or {}
        return dict(self.resolve(_merge(global_properties, own)))

    @staticmethod
    def _jwt_authorizer(api_id: str, api: Mapping[str, Any], name: str) -> JwtAuthorizerSpec:
        spec = ((api.get("Auth") or {}).get("Authorizers") or {}).get(name)
        if spec is None:
            raise TemplateError(f"{api_id} has no authorizer {name}")
        if "JwtConfiguration" not in spec:
            raise TemplateError(f"{api_id} authorizer {name}: only JWT authorizers are emulated locally")
        source = spec.get("IdentitySource", "$request.header.Authorization")
        if isinstance(source, list):
            source = source[0]
        prefix = "$request.header."
        if not str(source).startswith(prefix):
            raise TemplateError(f"{api_id} authorizer {name}: identity source {source} is not a header")
        return JwtAuthorizerSpec(name, str(source)[len(prefix) :].lower(), tuple(spec.get("AuthorizationScopes") or ()))

    # -- helpers

    def _single(self, resource_type: str, logical_id: str | None) -> str:
        if logical_id is not None:
            if self.resources.get(logical_id, {}).get("Type") != resource_type:
                raise TemplateError(f"{logical_id} is not an {resource_type}")
            return logical_id
        found = [name for name in self.resources_of_type(resource_type) if self.resource_exists(name)]
        if len(found) != 1:
            raise TemplateError(f"expected exactly one {resource_type} in the template, found {found or 'none'}")
        return found[0]


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals: the resource's own values win; nested maps (Environment.Variables) are merged."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not _is_intrinsic(value):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    if len(value) == 1 and next(iter(value)) in ("Ref", "Condition"):
        return True
    return any(key.startswith("Fn::") for key in value)


def _cors(value: Any) -> CorsConfig | None:
    if value is None or value is False:
        return None
    if value is True or isinstance(value, str):  # SAM shorthand: every origin
        origin = value if isinstance(value, str) else "*"
        return CorsConfig(allow_origins=(origin.strip("'"),), allow_methods=("*",), allow_headers=("*",))
    _require_resolved(value, "a CORS configuration")

    def strings(key: str) -> tuple[str, ...]:
        items = value.get(key) or ()
        return tuple(str(item) for item in ([items] if isinstance(items, str) else items))

    return CorsConfig(
        allow_origins=strings("AllowOrigins"),
        allow_methods=tuple(method.upper() for method in strings("AllowMethods")),
        allow_headers=tuple(header.lower() for header in strings("AllowHeaders")),
        expose_headers=tuple(header.lower() for header in strings("ExposeHeaders")),
        max_age=int(value["MaxAge"]) if value.get("MaxAge") is not None else None,
        allow_credentials=_truthy(value.get("AllowCredentials", False)),
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar_text(item) for item in value)
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _integers(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: int(v) if k in keys else _integers(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(item, keys) for item in value]
    return value


def _require_resolved(value: Any, what: str) -> None:
    if isinstance(value, Unresolved):
        raise TemplateError(f"{what} depends on a deployed resource: {value.expression!r}")
    if isinstance(value, Mapping):
        for item in value.values():
            _require_resolved(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _require_resolved(item, what)


# --- module-level shortcuts (each call reads the file again: no cache to go stale) ----------------------


def table_definition(
    path: Path | str = DEFAULT_TEMPLATE, *, table_name: str | None = None, logical_id: str | None = None
) -> dict[str, Any]:
    """boto3 `create_table` keyword arguments from the template's table (add `TableName`, or pass table_name)."""
    return Template.load(path).table_definition(logical_id, table_name=table_name)


def time_to_live(path: Path | str = DEFAULT_TEMPLATE, *, logical_id: str | None = None) -> dict[str, Any] | None:
    return Template.load(path).time_to_live(logical_id)


def http_api_routes(path: Path | str = DEFAULT_TEMPLATE) -> list[RouteSpec]:
    return Template.load(path).http_api_routes()


def bucket_cors(path: Path | str = DEFAULT_TEMPLATE, *, logical_id: str | None = None) -> list[dict[str, Any]]:
    return Template.load(path).bucket_cors(logical_id)
