"""Helpers for tests that use the local stack (plain functions and classes; fixtures live in conftest.py).

Unit tests of the emulators, no AWS and no network:

- `issuer = make_issuer()`: tokens signed with a key made for this run (`issuer.bad_tokens("alice")` too);
- `handler = FakeHandler()`: a stand-in Lambda handler that records its events;
- `api = HttpApiEmulator(api_spec([...]), {"Fn": fake_function(handler)}, authorizer_for(issuer))`, then
  `api(request("GET", "/tasks/1", headers=issuer.bearer("alice")))`.

End-to-end, over HTTP:

- `stack = start_stack_process(state_dir=tmp_path)`: `python -m local run` on free ports in a child process;
  `stack.info` holds api_url (with the stage, e.g. http://127.0.0.1:PORT/dev), export_url, function_url,
  issuer_url, audience, key_path, aws_endpoint, dynamodb_endpoint, table_name, bucket_name and docs_url;
  `stack.issuer().bearer("alice")` signs accepted tokens; `stack.drain_events()` waits until S3 uploads
  reached their EventBridge function; `stack.stop()`.
- `dynamodb = start_dynamodb_local()`: DynamoDB Local (npm package, java) on a free port, then
  `start_stack_process(dynamodb_endpoint=dynamodb.endpoint, table_name="e2e", state_dir=tmp_path)`.
- `start_local_stack(tmp_path)`: the same stack in this process (sets the apps' environment until stop()).
"""

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from local.aws import DynamoDBLocal, start_dynamodb_local
from local.events import HttpRequest, LambdaContext
from local.gateway import JwtAuthorizer, LambdaFunction, static_jwks
from local.issuer import LocalIssuer, generate_key
from local.stack import LocalStack, StackProcess
from local.template import ApiRoute, CorsConfig, HttpApiSpec, JwtAuthorizerSpec

TEST_ISSUER = "https://issuer.local.test"
TEST_AUDIENCE = "local-test-audience"
JWT = JwtAuthorizerSpec("JwtAuthorizer", "authorization")

__all__ = [
    "JWT",
    "TEST_AUDIENCE",
    "TEST_ISSUER",
    "DynamoDBLocal",
    "FakeHandler",
    "api_spec",
    "authorizer_for",
    "fake_function",
    "make_issuer",
    "request",
    "start_dynamodb_local",
    "start_local_stack",
    "start_stack_process",
]


def make_issuer(issuer: str = TEST_ISSUER, audience: str = TEST_AUDIENCE) -> LocalIssuer:
    """An issuer with a fresh in-memory key (nothing written to disk)."""
    return LocalIssuer(None, issuer, audience, key=generate_key())


def authorizer_for(issuer: LocalIssuer) -> JwtAuthorizer:
    """The HTTP API JWT authorizer trusting `issuer`, reading its JWKS without HTTP."""
    return JwtAuthorizer(issuer.issuer, issuer.audience, static_jwks(issuer.jwks))


class FakeHandler:
    """A Lambda handler that records each (event, context) and answers with `response` (or calls it)."""

    def __init__(self, response: Any = None):
        self.calls: list[tuple[dict[str, Any], LambdaContext]] = []
        self.response = response if response is not None else {"statusCode": 200, "body": "ok"}

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        self.calls.append((event, context))
        if callable(self.response):
            return self.response(event, context)
        return self.response

    @property
    def event(self) -> dict[str, Any]:
        """The last event (fails the test when the handler was not called)."""
        if not self.calls:
            raise AssertionError("the handler was not called")
        return self.calls[-1][0]


def fake_function(
    handler: Callable[[dict[str, Any], Any], Any], *, name: str = "fake", timeout_seconds: float = 3
) -> LambdaFunction:
    return LambdaFunction(name, handler, timeout_seconds=timeout_seconds, memory_mb=256)


def api_spec(
    routes: Iterable[tuple[str, str] | tuple[str, str, str]],
    *,
    authorizer: JwtAuthorizerSpec | None = JWT,
    scopes: Mapping[str, tuple[str, ...]] | None = None,
    cors: CorsConfig | None = None,
    stage: str = "$default",
) -> HttpApiSpec:
    """An HTTP API of `(method, path[, function])` routes (function defaults to "Fn"), all behind `authorizer`.

    `scopes` maps a route key (`"GET /admin"`) to the scopes it requires.
    """
    built = []
    for route in routes:
        method, path = route[0], route[1]
        function = route[2] if len(route) > 2 else "Fn"
        key = f"{method} {path}"
        built.append(ApiRoute(method, path, function, authorizer, (scopes or {}).get(key, ())))
    return HttpApiSpec("TestApi", tuple(built), cors, stage)


def request(
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | str | Any = b"",
    source_ip: str = "203.0.113.7",
) -> HttpRequest:
    """An HttpRequest as the server would hand it over; a dict/list body is sent as JSON."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
        pairs.append(("Content-Type", "application/json"))
    data = body.encode() if isinstance(body, str) else body
    pairs.insert(0, ("Host", "127.0.0.1:3000"))
    return HttpRequest(method, target, pairs, data, source_ip)


def start_local_stack(state_dir: Path, **options: Any) -> LocalStack:
    """The whole stack in this process on free ports; `state_dir` holds its key and cursor secret.

    It sets the apps' environment variables in this process until `stop()`: prefer `start_stack_process`
    for end-to-end tests that share a process with unit tests.
    """
    ports = {name: 0 for name in ("port_api", "port_export", "port_url", "port_issuer", "port_aws")}
    return LocalStack(state_dir=state_dir, **{**ports, **options}).start()


def start_stack_process(
    *,
    dynamodb_endpoint: str | None = None,
    table_name: str | None = None,
    state_dir: Path | None = None,
    log: TextIO | None = None,
    timeout: float = 60,
) -> StackProcess:
    """`python -m local run` in a child process on free ports (on moto, or the table on `dynamodb_endpoint`)."""
    extra = ("--state-dir", str(state_dir)) if state_dir is not None else ()
    stack = StackProcess(dynamodb_endpoint=dynamodb_endpoint, table_name=table_name, extra_args=extra, log=log)
    return stack.start(timeout=timeout)
