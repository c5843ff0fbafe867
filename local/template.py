"""template.yaml as data: the local stack and the tests build what the template declares, nothing hard-coded.

CloudFormation short tags (`!Ref`, `!Sub`, ...) load as their long forms. `Template.resolve` evaluates
what the template itself decides, with the intrinsic functions template.yaml uses: `Ref`, `Fn::Sub`,
`Fn::If`, `Fn::GetAtt`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`; any other is a
`TemplateError` that names it and where it is. A deployed resource (`!Ref Table` with no local name,
`!GetAtt Role.Arn`) resolves to an `Unresolved` marker, which callers drop or replace with a local value.
"""

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME, REPO_ROOT
from local.specs import (
    ApiRoute,
    BucketSpec,
    CorsConfig,
    EventRuleSpec,
    FunctionSpec,
    FunctionUrlSpec,
    HttpApiSpec,
    JwtAuthorizerSpec,
    RouteSpec,
)

DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
IMPLICIT_HTTP_API = "ServerlessHttpApi"  # the logical id SAM gives the API of events without ApiId
FUNCTION = "AWS::Serverless::Function"
_PSEUDO = {"AWS::Region": LOCAL_REGION, "AWS::AccountId": LOCAL_ACCOUNT_ID, "AWS::Partition": "aws"}
_PSEUDO["AWS::URLSuffix"] = "amazonaws.com"
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "StreamSpecification")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


class TemplateError(Exception):
    """template.yaml does not hold what the local stack needs, or uses what it cannot evaluate."""


class Unresolved:
    """An intrinsic function that only a deployed stack can evaluate (a resource's Ref or attribute)."""

    def __init__(self, expression: Any):
        self.expression = expression

    def __repr__(self) -> str:
        return f"Unresolved({self.expression!r})"


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads CloudFormation's short-form intrinsic function tags."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
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


class Template:
    """A parsed template plus the parameter values and local resource names it is evaluated with."""

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
    ):
        """`resource_names`: what `!Ref` of a resource gives locally, e.g. {"TasksTable": "tasks-local"}."""
        self.document = document
        self.resource_names = dict(resource_names or {})
        self._overrides = dict(parameters or {})
        self._conditions: dict[str, bool] = {}

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TEMPLATE, **kwargs: Any) -> "Template":
        return cls(load_yaml(path), **kwargs)

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.document.get("Resources") or {}

    def logical_ids(self, resource_type: str) -> list[str]:
        """The resources of this type that exist with the parameters given, in template order."""
        return [
            name
            for name, body in self.resources.items()
            if body.get("Type") == resource_type and ("Condition" not in body or self.condition(body["Condition"]))
        ]

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """Parameter values: overrides, else defaults. CommaDelimitedList values are lists."""
        values: dict[str, Any] = {}
        for name, spec in (self.document.get("Parameters") or {}).items():
            raw = self._overrides.get(name, spec.get("Default"))
            if raw is not None:
                text = _text(raw)
                values[name] = (
                    [item.strip() for item in text.split(",")] if spec.get("Type") == "CommaDelimitedList" else text
                )
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.document.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"condition {name} is not defined")
            value = self.resolve(conditions[name], f"Conditions.{name}")
            if not isinstance(value, bool):
                raise TemplateError(f"condition {name} does not evaluate to true or false locally: {value!r}")
            self._conditions[name] = value
        return self._conditions[name]

    # -- intrinsic functions

    def resolve(self, value: Any, where: str = "") -> Any:
        """Evaluate the intrinsic functions in `value` (found at `where`, for error messages)."""
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Condition" and isinstance(argument, str):  # (an IAM Condition is a map)
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument, f"{where}.{key}")
        return {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}

    def _ref(self, name: str) -> Any:
        if name == "AWS::StackName":
            return LOCAL_STACK_NAME
        for names in (_PSEUDO, self.parameters, self.resource_names):
            if name in names:
                return names[name]
        return Unresolved({"Ref": name})

    def _function(self, name: str, argument: Any, where: str) -> Any:
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(str(condition)) else when_false, where)
        if name == "GetAtt":
            return Unresolved({"Fn::GetAtt": argument})
        if name == "Sub":
            return self._sub(argument, where)
        if name not in ("Equals", "Not", "And", "Or"):
            raise TemplateError(
                f"{where.lstrip('.')}: Fn::{name} is not resolved locally (template.yaml did not use it)"
            )
        values = [self.resolve(item, where) for item in argument]
        if any(isinstance(item, Unresolved) for item in values):
            return Unresolved({f"Fn::{name}": argument})
        if name == "Equals":
            return _text(values[0]) == _text(values[1])
        return not values[0] if name == "Not" else all(values) if name == "And" else any(values)

    def _sub(self, argument: Any, where: str) -> Any:
        text, variables = (
            (argument[0], self.resolve(argument[1], where)) if isinstance(argument, list) else (argument, {})
        )
        values = {}
        for name in _SUB_VARIABLE.findall(str(text)):
            if name.startswith("!"):
                continue
            value = variables[name] if name in variables else self._ref(name) if "." not in name else Unresolved(name)
            if isinstance(value, Unresolved):
                return Unresolved({"Fn::Sub": argument})
            values[name] = _text(value)
        return _SUB_VARIABLE.sub(lambda m: values.get(m.group(1), "${" + m.group(1)[1:] + "}"), str(text))

    def _properties(self, logical_id: str, resource_type: str) -> dict[str, Any]:
        body = self.resources.get(logical_id)
        if body is None or body.get("Type") != resource_type:
            raise TemplateError(f"{logical_id} is not an {resource_type}")
        return dict(self.resolve(body.get("Properties") or {}, f"{logical_id}.Properties"))

    def _only(self, resource_type: str, logical_id: str | None) -> str:
        found = [logical_id] if logical_id is not None else self.logical_ids(resource_type)
        if len(found) != 1:
            raise TemplateError(f"expected exactly one {resource_type} in the template, found {found or 'none'}")
        return found[0]

    # -- DynamoDB and S3

    def table_definition(self, logical_id: str | None = None, *, table_name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for boto3 `create_table`, from the table's own definition (the only table by default).

        Properties `create_table` does not take (TTL, PITR, SSE, deletion protection, ...) are left out.
        """
        name = self._only("AWS::DynamoDB::Table", logical_id)
        properties = self._properties(name, "AWS::DynamoDB::Table")
        definition: dict[str, Any] = {key: properties[key] for key in _TABLE_KEYS if key in properties}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if properties.get(key):
                definition[key] = [{k: index[k] for k in _INDEX_KEYS if k in index} for index in properties[key]]
        if definition.setdefault("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
            definition.pop("ProvisionedThroughput", None)
            for index in definition.get("GlobalSecondaryIndexes", []):
                index.pop("ProvisionedThroughput", None)
        _require_resolved(definition, f"table {name}")
        definition = _integers(definition, ("ReadCapacityUnits", "WriteCapacityUnits"))
        return definition if table_name is None else {"TableName": table_name, **definition}

    def time_to_live(self, logical_id: str | None = None) -> dict[str, Any] | None:
        """The table's `TimeToLiveSpecification` (boto3 shape), or None."""
        name = self._only("AWS::DynamoDB::Table", logical_id)
        spec = self._properties(name, "AWS::DynamoDB::Table").get("TimeToLiveSpecification")
        if not spec or not spec.get("AttributeName"):
            return None
        return {"AttributeName": spec["AttributeName"], "Enabled": _truthy(spec.get("Enabled", True))}

    def bucket(self, logical_id: str | None = None) -> BucketSpec:
        name = self._only("AWS::S3::Bucket", logical_id)
        properties = self._properties(name, "AWS::S3::Bucket")
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
        _require_resolved(cors_rules, f"the CORS rules of bucket {name}")
        encryption = []
        for rule in (properties.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []:
            if (rule.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") == "AES256":  # KMS: AWS's business
                encryption.append({"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})
        block = properties.get("PublicAccessBlockConfiguration")
        notifications = (properties.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
        return BucketSpec(
            logical_id=name,
            versioning=(properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled",
            cors_rules=tuple(cors_rules),
            encryption_rules=tuple(encryption),
            public_access_block={key: _truthy(value) for key, value in block.items()} if block else None,
            eventbridge=_truthy(notifications.get("EventBridgeEnabled", False)),
        )

    # -- functions

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's Properties with `Globals.Function` merged in, intrinsics not yet resolved."""
        body = self.resources.get(logical_id)
        if body is None or body.get("Type") != FUNCTION:
            raise TemplateError(f"{logical_id} is not an {FUNCTION}")
        return _merge((self.document.get("Globals") or {}).get("Function") or {}, body.get("Properties") or {})

    def function(self, logical_id: str) -> FunctionSpec:
        raw = self.function_properties(logical_id)
        where = f"{logical_id}.Properties"
        name = self.resolve(raw.get("FunctionName"), where)
        variables = self.resolve((raw.get("Environment") or {}).get("Variables") or {}, f"{where}.Environment")
        url = None
        if raw.get("FunctionUrlConfig"):
            config = self.resolve(raw["FunctionUrlConfig"], f"{where}.FunctionUrlConfig")
            url = FunctionUrlSpec(
                config.get("AuthType", "AWS_IAM"), config.get("InvokeMode", "BUFFERED"), _cors(config.get("Cors"))
            )
        return FunctionSpec(
            logical_id=logical_id,
            name=name if isinstance(name, str) else f"{LOCAL_STACK_NAME}-{logical_id}",
            handler=str(self.resolve(raw.get("Handler", ""), where)),
            timeout_seconds=int(self.resolve(raw.get("Timeout", 3), where)),
            memory_mb=int(self.resolve(raw.get("MemorySize", 128), where)),
            environment={k: _text(v) for k, v in variables.items() if not isinstance(v, Unresolved)},
            url=url,
            properties=raw,
        )

    def functions(self) -> dict[str, FunctionSpec]:
        return {name: self.function(name) for name in self.logical_ids(FUNCTION)}

    def _events(self, kind: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        for function_id in self.logical_ids(FUNCTION):
            for event_name, event in (self.function_properties(function_id).get("Events") or {}).items():
                if event.get("Type") == kind:
                    yield function_id, f"{function_id}.Events.{event_name}", event.get("Properties") or {}

    def event_rules(self) -> list[EventRuleSpec]:
        """Every `Type: EventBridgeRule` event of every function (the pattern must resolve locally)."""
        rules = []
        for function_id, where, properties in self._events("EventBridgeRule"):
            pattern = self.resolve(properties.get("Pattern") or {}, f"{where}.Pattern")
            _require_resolved(pattern, f"the pattern of {where}")
            rules.append(EventRuleSpec(where.replace(".Events.", "."), function_id, pattern))
        return rules

    # -- HTTP API

    def http_api_routes(self) -> list[RouteSpec]:
        """Every `Type: HttpApi` event as (method, path, function logical id, handler)."""
        return [
            RouteSpec(route.method, route.path, route.function, self.function(route.function).handler)
            for api in self.http_apis().values()
            for route in api.routes
        ]

    def http_apis(self) -> dict[str, HttpApiSpec]:
        """Each HTTP API with its routes, their JWT authorizer and scopes, and its CORS configuration."""
        routes: dict[str, list[ApiRoute]] = {}
        for function_id, where, raw in self._events("HttpApi"):
            if "Path" not in raw or "Method" not in raw:
                raise TemplateError(f"{where}: an HttpApi event needs Path and Method (no $default route locally)")
            api_ref = raw.get("ApiId", {"Ref": IMPLICIT_HTTP_API})
            if not isinstance(api_ref, dict) or "Ref" not in api_ref:
                raise TemplateError(f"{where}: ApiId must be a !Ref to an HttpApi")
            api_id, properties = str(api_ref["Ref"]), self.resolve(raw, where)
            api = self._http_api(api_id)
            auth = properties.get("Auth") or {}
            authorizer_name = auth.get("Authorizer") or (api.get("Auth") or {}).get("DefaultAuthorizer")
            authorizer = None
            if authorizer_name and authorizer_name != "NONE":
                authorizer = _jwt_authorizer(api_id, api, str(authorizer_name))
            scopes = tuple(auth.get("AuthorizationScopes") or (authorizer.scopes if authorizer else ()))
            method, path = str(properties["Method"]).upper(), str(properties["Path"])
            routes.setdefault(api_id, []).append(ApiRoute(method, path, function_id, authorizer, scopes))
        specs = {}
        for api_id, api_routes in routes.items():
            properties = self._http_api(api_id)
            stage = properties.get("StageName") or "$default"
            _require_resolved(stage, f"the StageName of {api_id}")
            specs[api_id] = HttpApiSpec(api_id, tuple(api_routes), _cors(properties.get("CorsConfiguration")), stage)
        return specs

    def _http_api(self, api_id: str) -> dict[str, Any]:
        own: Mapping[str, Any] = {}
        if api_id != IMPLICIT_HTTP_API:
            body = self.resources.get(api_id)
            if body is None or body.get("Type") != "AWS::Serverless::HttpApi":
                raise TemplateError(f"{api_id} is not an AWS::Serverless::HttpApi")
            own = body.get("Properties") or {}
        return dict(self.resolve(_merge((self.document.get("Globals") or {}).get("HttpApi") or {}, own), api_id))


def _jwt_authorizer(api_id: str, api: Mapping[str, Any], name: str) -> JwtAuthorizerSpec:
    spec = ((api.get("Auth") or {}).get("Authorizers") or {}).get(name)
    if spec is None or "JwtConfiguration" not in spec:
        raise TemplateError(f"{api_id} authorizer {name}: only JWT authorizers declared on the API are emulated")
    source = spec.get("IdentitySource", "$request.header.Authorization")
    source = str(source[0] if isinstance(source, list) else source)
    if not source.startswith("$request.header."):
        raise TemplateError(f"{api_id} authorizer {name}: identity source {source} is not a header")
    header = source.removeprefix("$request.header.").lower()
    return JwtAuthorizerSpec(name, header, tuple(spec.get("AuthorizationScopes") or ()))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals: the resource's own values win; nested maps (Environment.Variables) are merged."""
    merged = dict(base)
    for key, value in override.items():
        intrinsic = isinstance(value, Mapping) and any(k == "Ref" or k.startswith("Fn::") for k in value)
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not intrinsic:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _cors(value: Any) -> CorsConfig | None:
    if not value:
        return None
    _require_resolved(value, "a CORS configuration")

    def strings(key: str, convert: Any = str) -> tuple[str, ...]:
        items = value.get(key) or ()
        return tuple(convert(str(item)) for item in ([items] if isinstance(items, str) else items))

    return CorsConfig(
        allow_origins=strings("AllowOrigins"),
        allow_methods=strings("AllowMethods", str.upper),
        allow_headers=strings("AllowHeaders", str.lower),
        expose_headers=strings("ExposeHeaders", str.lower),
        max_age=int(value["MaxAge"]) if value.get("MaxAge") is not None else None,
        allow_credentials=_truthy(value.get("AllowCredentials", False)),
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
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
    for item in value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else ():
        _require_resolved(item, what)


def table_definition(path: Path | str = DEFAULT_TEMPLATE, *, table_name: str | None = None) -> dict[str, Any]:
    """boto3 `create_table` keyword arguments from the template's table (add `TableName`, or pass table_name)."""
    return Template.load(path).table_definition(table_name=table_name)


def http_api_routes(path: Path | str = DEFAULT_TEMPLATE) -> list[RouteSpec]:
    return Template.load(path).http_api_routes()
