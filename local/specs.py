"""What the local stack reads from template.yaml, as plain data (built by `local.template.Template`)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION


class RouteSpec(NamedTuple):
    """One `Type: HttpApi` event: `GET /tasks/{taskId}` goes to `TasksFunction` (`tasks.app.lambda_handler`)."""

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
