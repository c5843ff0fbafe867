"""The local HTTP API and function URL emulators behave as API Gateway and Lambda do (fake handlers, no AWS)."""

import base64
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from awslambdaric.lambda_context import LambdaContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.authorizer import AuthorizerError, JwtAuthorizer
from local.events import InvalidLambdaResponse, RequestIdentity, build_event
from local.events import to_http_response as translate
from local.gateway import FunctionUrlEmulator, HttpApiEmulator, RouteTable
from local.issuer import LocalIssuer, generate_key, issuer_app
from local.server import HttpServer
from local.specs import CorsConfig, FunctionUrlSpec, function, http_api_routes, http_apis
from local.template import Template
from tests.bad_tokens import BAD_TOKEN_KINDS, bad_tokens
from tests.local_support import FakeHandler, api_spec, authorizer_for, fake_function, make_issuer, request

TASK_ROUTES = [
    ("POST", "/tasks"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{taskId}"),
    ("PATCH", "/tasks/{taskId}"),
    ("DELETE", "/tasks/{taskId}"),
    ("GET", "/tasks/{taskId}/attachments/{attachmentId}"),
]


@pytest.fixture(scope="module")
def signer() -> LocalIssuer:
    return make_issuer()


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"})


@pytest.fixture
def api(signer: LocalIssuer, handler: FakeHandler) -> HttpApiEmulator:
    return HttpApiEmulator(api_spec(TASK_ROUTES), {"Fn": fake_function(handler)}, authorizer_for(signer))


def body(response: Any) -> Any:
    return json.loads(response.get_data())


# --- routes -------------------------------------------------------------------------------------------


def test_routes_are_read_from_the_template() -> None:
    template = Template.load()
    routes = http_api_routes(template)
    table = RouteTable(route for api in http_apis(template).values() for route in api.routes)

    matched = table.match("GET", "/tasks/01ABC")

    assert routes and {function(template, route.function).handler for route in routes} == {"tasks.app.lambda_handler"}
    assert matched is not None
    route, parameters = matched
    assert (route.route_key, parameters) == ("GET /tasks/{taskId}", {"taskId": "01ABC"})
    assert route.authorizer is not None, "every route of the template is behind the JWT authorizer"
    assert table.match("GET", "/admin") is None
    assert table.match("PATCH", "/tasks") is None


def test_a_literal_segment_wins_over_a_parameter_left_to_right() -> None:
    routes = [("GET", "/{a}/{b}"), ("GET", "/tasks/{taskId}"), ("GET", "/tasks/export"), ("GET", "/{a}/export")]
    table = RouteTable(api_spec(routes).routes)

    def key(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        matched = table.match(method, path)
        return None if matched is None else (matched[0].route_key, matched[1])

    assert key("GET", "/tasks/export") == ("GET /tasks/export", {})
    assert key("GET", "/tasks/42") == ("GET /tasks/{taskId}", {"taskId": "42"})
    assert key("GET", "/users/export") == ("GET /{a}/export", {"a": "users"})
    assert key("GET", "/users/42") == ("GET /{a}/{b}", {"a": "users", "b": "42"})
    assert key("POST", "/tasks/42") is None
    assert key("GET", "/tasks/42/more") is None


def test_path_parameters_are_percent_decoded_and_never_empty() -> None:
    table = RouteTable(api_spec([("GET", "/tasks/{taskId}")]).routes)

    matched = table.match("GET", "/tasks/a%20b%2Fc")

    assert matched is not None and matched[1] == {"taskId": "a b/c"}
    assert table.match("GET", "/tasks/") is None
    assert table.match("GET", "/tasks/1/extra") is None


def test_an_undeclared_route_is_404_and_the_function_is_not_called(
    api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler
) -> None:
    for method, path in [("GET", "/nope"), ("PUT", "/tasks/1"), ("DELETE", "/tasks"), ("GET", "/")]:
        response = api(request(method, path, headers=signer.bearer("alice")))
        assert (response.status_code, body(response)) == (404, {"message": "Not Found"}), (method, path)
    assert handler.calls == []


def test_a_route_answers_under_its_stage_as_on_aws_and_at_the_root_as_under_sam_local(
    signer: LocalIssuer, handler: FakeHandler
) -> None:
    api = HttpApiEmulator(api_spec(TASK_ROUTES, stage="dev"), {"Fn": fake_function(handler)}, authorizer_for(signer))

    at_root = api(request("GET", "/tasks/1", headers=signer.bearer("alice")))
    root_event = handler.event
    under_stage = api(request("GET", "/dev/tasks/1", headers=signer.bearer("alice")))
    stage_event = handler.event
    other_stage = api(request("GET", "/prod/tasks/1", headers=signer.bearer("alice")))

    assert (at_root.status_code, under_stage.status_code, other_stage.status_code) == (200, 200, 404)
    for event, raw_path, stage in ((root_event, "/tasks/1", "$default"), (stage_event, "/dev/tasks/1", "dev")):
        assert (event["rawPath"], event["routeKey"], event["pathParameters"]) == (
            raw_path,
            "GET /tasks/{taskId}",
            {"taskId": "1"},
        )
        assert event["requestContext"]["stage"] == stage  # rawPath starts with the stage, unless $default
    assert len(handler.calls) == 2


# --- the JWT authorizer -------------------------------------------------------------------------------


def test_no_token_is_401_with_www_authenticate_and_the_function_is_not_called(
    api: HttpApiEmulator, handler: FakeHandler
) -> None:
    response = api(request("GET", "/tasks"))

    assert (response.status_code, body(response)) == (401, {"message": "Unauthorized"})
    assert response.headers.get("www-authenticate", "").startswith("Bearer ")
    assert response.headers.get("apigw-requestid")
    assert handler.calls == []


# A token without `sub` passes API Gateway's authorizer (the app refuses it), so it is not in this list.
@pytest.mark.parametrize("kind", [kind for kind in BAD_TOKEN_KINDS if kind != "no_sub"])
def test_a_bad_token_is_401_and_the_function_is_not_called(
    api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler, kind: str
) -> None:
    token = bad_tokens(signer, "alice")[kind]

    response = api(request("GET", "/tasks/1", headers={"Authorization": f"Bearer {token}"}))

    assert (response.status_code, body(response)) == (401, {"message": "Unauthorized"})
    assert 'error="invalid_token"' in response.headers.get("www-authenticate", "")
    assert handler.calls == []


def test_the_www_authenticate_header_says_why(api: HttpApiEmulator, signer: LocalIssuer) -> None:
    bad = bad_tokens(signer, "alice")

    def reason(token: str) -> str:
        response = api(request("GET", "/tasks", headers={"Authorization": f"Bearer {token}"}))
        return response.headers.get("www-authenticate")

    assert "expired" in reason(bad["expired"])
    assert "audience" in reason(bad["wrong_audience"])
    assert "issuer" in reason(bad["wrong_issuer"])
    assert "none" in reason(bad["alg_none"])


def test_the_authorizer_finds_the_issuers_keys_by_discovery_and_a_rotated_key_by_one_refetch() -> None:
    issuer = LocalIssuer(None, "http://127.0.0.1:0", "aud", key=generate_key())
    server = HttpServer(issuer_app(issuer), name="issuer").start()
    try:
        issuer.issuer = server.url
        authorizer = JwtAuthorizer(issuer.issuer, "aud")
        assert authorizer.authorize(f"Bearer {issuer.token('alice')}")["jwt"]["claims"]["sub"] == "alice"

        issuer._key = generate_key()  # the issuer rotates its key (after the authorizer's refetch cooldown)
        with mock.patch("time.monotonic", return_value=time.monotonic() + 10):
            claims = authorizer.authorize(f"Bearer {issuer.token('bob')}")["jwt"]["claims"]
        assert claims["sub"] == "bob"
    finally:
        server.stop()


def test_an_issuer_that_cannot_be_reached_is_401_not_an_error(signer: LocalIssuer) -> None:
    authorizer = JwtAuthorizer("http://127.0.0.1:9", "aud")

    with pytest.raises(AuthorizerError, match="cannot be fetched"):
        authorizer.authorize(f"Bearer {signer.token('alice')}")


def test_a_valid_token_puts_its_claims_in_the_event_as_strings(
    api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler
) -> None:
    token = signer.token("alice", groups=["admins", "ops"], email_verified=True)

    response = api(request("GET", "/tasks/1", headers={"Authorization": f"Bearer {token}"}))

    assert response.status_code == 200
    authorizer = handler.event["requestContext"]["authorizer"]
    claims = authorizer["jwt"]["claims"]
    assert claims["sub"] == "alice"
    assert claims["iss"] == signer.issuer and claims["aud"] == signer.audience
    assert claims["exp"].isdigit() and claims["groups"] == "[admins ops]" and claims["email_verified"] == "true"
    assert authorizer["jwt"]["scopes"] is None


def test_the_bearer_prefix_is_optional_as_on_api_gateway(
    api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler
) -> None:
    response = api(request("GET", "/tasks", headers={"authorization": signer.token("alice")}))

    assert response.status_code == 200
    assert handler.event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"


def test_a_route_without_authorizer_gets_no_authorizer_context(signer: LocalIssuer, handler: FakeHandler) -> None:
    api = HttpApiEmulator(api_spec([("GET", "/healthz")], authorizer=None), {"Fn": fake_function(handler)}, None)

    response = api(request("GET", "/healthz"))

    assert response.status_code == 200
    assert "authorizer" not in handler.event["requestContext"]


# --- events -------------------------------------------------------------------------------------------


def test_the_event_is_payload_format_2(api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler) -> None:
    headers = [
        *signer.bearer("alice").items(),
        ("X-Custom", "one"),
        ("x-custom", "two"),
        ("User-Agent", "pytest-agent"),
        ("Cookie", "session=abc; theme=dark"),
        ("Cookie", "lang=en"),
    ]

    api(request("GET", "/tasks/t%201?tag=a&tag=b&status=pending&empty=&q=x%20y", headers=headers))

    event = handler.event
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /tasks/{taskId}"
    assert event["rawPath"] == "/tasks/t 1"  # HTTP APIs decode the path
    assert event["rawQueryString"] == "tag=a&tag=b&status=pending&empty=&q=x%20y"
    assert event["queryStringParameters"] == {"tag": "a,b", "status": "pending", "empty": "", "q": "x y"}
    assert event["pathParameters"] == {"taskId": "t 1"}
    assert event["cookies"] == ["session=abc", "theme=dark", "lang=en"]
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "one,two"
    assert event["isBase64Encoded"] is False and "body" not in event
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["routeKey"] == "GET /tasks/{taskId}" and context["stage"] == "$default"
    assert context["http"] == {
        "method": "GET",
        "path": "/tasks/t 1",
        "protocol": "HTTP/1.1",
        "sourceIp": "203.0.113.7",
        "userAgent": "pytest-agent",
    }
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    assert {"accountId", "apiId", "domainName", "domainPrefix"} <= set(context)


@pytest.mark.parametrize(
    ("content_type", "data", "encoded"),
    [
        ("application/json", '{"title": "ünïcödé ✓"}'.encode(), False),
        ("application/merge-patch+json", b'{"title": null}', False),
        ("text/plain; charset=utf-8", b"hello", False),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\xff", True),
        ("application/octet-stream", b"\x00\x01\x02", True),
        (None, b"no content type", True),
        ("text/plain", b"\xff\xfe not utf-8", True),
    ],
)
def test_a_body_is_text_or_base64_by_content_type(content_type: str | None, data: bytes, encoded: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = build_event(request("POST", "/tasks", headers=headers, body=data), RequestIdentity(api_id="test"))

    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == data


def test_the_event_is_built_fresh_and_json_for_every_invocation(api: HttpApiEmulator, signer: LocalIssuer) -> None:
    seen: list[dict[str, Any]] = []

    def mutating(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        seen.append(json.loads(json.dumps(event)))
        event["headers"].clear()
        return {"statusCode": 204}

    api.functions["Fn"].handler = mutating
    for _ in range(2):
        api(request("DELETE", "/tasks/1", headers=signer.bearer("alice")))

    assert seen[0]["headers"]["authorization"] and seen[1]["headers"]["authorization"]


def test_the_handler_gets_a_lambda_context(api: HttpApiEmulator, signer: LocalIssuer, handler: FakeHandler) -> None:
    api(request("GET", "/tasks", headers=signer.bearer("alice")))

    context = handler.calls[-1][1]
    assert context.function_name == "fake"
    assert context.memory_limit_in_mb == "256"
    assert context.invoked_function_arn.endswith(":function:fake")
    assert context.aws_request_id and context.function_version == "$LATEST"
    assert 0 < context.get_remaining_time_in_millis() <= 3000


# --- responses ----------------------------------------------------------------------------------------


def test_cookies_become_set_cookie_headers_and_a_base64_body_is_decoded() -> None:
    response = translate(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "image/png", "ETag": '"v1"'},
            "cookies": ["a=1; Path=/; HttpOnly", "b=2"],
            "body": base64.b64encode(b"\x89PNG\x00\xff").decode(),
            "isBase64Encoded": True,
        }
    )

    assert response.status_code == 201
    assert response.get_data() == b"\x89PNG\x00\xff"
    assert [value for name, value in response.headers if name == "set-cookie"] == ["a=1; Path=/; HttpOnly", "b=2"]
    assert response.headers.get("etag") == '"v1"'


@pytest.mark.parametrize(
    ("result", "expected_body"),
    [({"hello": "world"}, b'{"hello":"world"}'), (["a", 1], b'["a",1]'), ("plain text", b"plain text")],
)
def test_a_result_without_status_code_is_a_200_json_response(result: Any, expected_body: bytes) -> None:
    response = translate(result)

    assert (response.status_code, response.headers.get("content-type")) == (200, "application/json")
    assert response.get_data() == expected_body


def test_an_invalid_result_or_a_failing_handler_is_a_500_from_the_api_and_a_502_from_the_url(
    signer: LocalIssuer,
) -> None:
    def failing(event: dict[str, Any], context: LambdaContext) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(InvalidLambdaResponse):
        translate({"statusCode": "abc"})
    for broken in (failing, FakeHandler({"statusCode": "abc"}), FakeHandler({"statusCode": 200, "body": object()})):
        api = HttpApiEmulator(api_spec([("GET", "/tasks")]), {"Fn": fake_function(broken)}, authorizer_for(signer))
        url = FunctionUrlEmulator(fake_function(broken))

        from_api = api(request("GET", "/tasks", headers=signer.bearer("alice")))
        from_url = url(request("GET", "/tasks"))

        assert (from_api.status_code, body(from_api)) == (500, {"message": "Internal Server Error"})
        assert from_url.status_code == 502


def test_decimals_in_a_result_are_numbers_as_the_python_runtime_serialises_them(signer: LocalIssuer) -> None:
    handler = FakeHandler({"statusCode": 200, "body": "x", "headers": {"x-count": Decimal(3)}})
    api = HttpApiEmulator(api_spec([("GET", "/tasks")]), {"Fn": fake_function(handler)}, authorizer_for(signer))

    response = api(request("GET", "/tasks", headers=signer.bearer("alice")))

    assert response.headers.get("x-count") == "3"


# --- CORS ---------------------------------------------------------------------------------------------

CORS = CorsConfig(
    allow_origins=("http://localhost:5173",),
    allow_methods=("GET", "POST", "PATCH"),
    allow_headers=("authorization", "content-type"),
    expose_headers=("etag",),
    max_age=600,
)


def test_a_preflight_is_answered_without_token_or_function(signer: LocalIssuer, handler: FakeHandler) -> None:
    api = HttpApiEmulator(api_spec(TASK_ROUTES, cors=CORS), {"Fn": fake_function(handler)}, authorizer_for(signer))
    preflight = [("Origin", "http://localhost:5173"), ("Access-Control-Request-Method", "PATCH")]

    allowed = api(request("OPTIONS", "/tasks/1", headers=preflight))
    other_origin = api(request("OPTIONS", "/tasks/1", headers=[("Origin", "https://evil.test"), preflight[1]]))
    actual = api(request("GET", "/tasks", headers=[preflight[0], *signer.bearer("alice").items()]))

    assert allowed.status_code == 204
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert allowed.headers.get("access-control-allow-methods") == "GET,POST,PATCH"
    assert allowed.headers.get("access-control-max-age") == "600"
    assert other_origin.status_code == 204 and other_origin.headers.get("access-control-allow-origin") is None
    assert actual.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert actual.headers.get("access-control-expose-headers") == "etag"
    assert len(handler.calls) == 1


# --- the function URL ---------------------------------------------------------------------------------


def test_the_function_url_sends_everything_to_the_function_without_authorizer(handler: FakeHandler) -> None:
    url = FunctionUrlEmulator(fake_function(handler), FunctionUrlSpec("NONE", "BUFFERED", None))

    response = url(request("PUT", "/any/path%2Fhere?x=1&x=2", body={"title": "t"}))

    assert response.status_code == 200
    event = handler.event
    assert (event["routeKey"], event["rawPath"]) == ("$default", "/any/path%2Fhere")  # function URLs keep the encoding
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert json.loads(event["body"]) == {"title": "t"} and event["isBase64Encoded"] is False
    assert "authorizer" not in event["requestContext"]
    assert "pathParameters" not in event
    assert event["requestContext"]["accountId"] == "anonymous"
    assert event["requestContext"]["http"]["method"] == "PUT"


def test_a_function_url_with_iam_auth_lets_nothing_through(handler: FakeHandler) -> None:
    url = FunctionUrlEmulator(fake_function(handler), FunctionUrlSpec("AWS_IAM", "BUFFERED", None))

    assert url(request("GET", "/tasks")).status_code == 403
    assert handler.calls == []


# --- over HTTP ----------------------------------------------------------------------------------------


def test_the_server_passes_raw_requests_and_serves_requests_concurrently(signer: LocalIssuer) -> None:
    # Given a slow function that waits for a fast one: they only both finish if requests run concurrently.
    fast_ran = threading.Event()

    def slow(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return {
            "statusCode": 200,
            "body": json.dumps({"fastRan": fast_ran.wait(timeout=10)}),
            "cookies": ["a=1", "b=2"],
        }

    def fast(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        fast_ran.set()
        return {"statusCode": 200, "body": event["body"]}

    spec = api_spec([("GET", "/slow", "Slow"), ("POST", "/fast", "Fast")])
    functions = {"Slow": fake_function(slow, name="slow", timeout_seconds=15), "Fast": fake_function(fast)}
    server = HttpServer(HttpApiEmulator(spec, functions, authorizer_for(signer)), name="test-api").start()
    try:
        results: dict[str, Any] = {}

        def call_slow() -> None:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=15)
            connection.request("GET", "/slow", headers=signer.bearer("alice"))
            response = connection.getresponse()
            results["slow"] = (json.loads(response.read()), response.headers.get_all("set-cookie"))
            connection.close()

        slow_thread = threading.Thread(target=call_slow)
        slow_thread.start()
        connection = http.client.HTTPConnection(server.host, server.port, timeout=15)
        connection.putrequest("POST", "/fast")
        for name, value in [*signer.bearer("alice").items(), ("Content-Type", "text/plain")]:
            connection.putheader(name, value)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        connection.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        fast_response = connection.getresponse()
        fast_body = fast_response.read()
        connection.close()
        slow_thread.join(timeout=15)
    finally:
        server.stop()

    assert fast_response.status == 200 and fast_body == b"hello world"
    assert results["slow"] == ({"fastRan": True}, ["a=1", "b=2"])


HEADER_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","), min_size=1)
COOKIE_PART = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=',;="\\'), min_size=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(HEADER_VALUE, min_size=1, max_size=4),
    cookie_headers=st.lists(st.lists(st.tuples(COOKIE_PART, COOKIE_PART), min_size=1, max_size=3), max_size=3),
)
def test_repeated_headers_over_http_are_joined_with_commas_and_every_cookie_is_split_out(
    url_server: HttpServer, handler: FakeHandler, values: list[str], cookie_headers: list[list[tuple[str, str]]]
) -> None:
    connection = http.client.HTTPConnection(url_server.host, url_server.port, timeout=15)
    connection.putrequest("GET", "/any")
    for value in values:
        connection.putheader("X-Custom", value)
    for pairs in cookie_headers:
        connection.putheader("Cookie", "; ".join(f"{name}={value}" for name, value in pairs))
    connection.endheaders()
    connection.getresponse().read()
    connection.close()

    assert handler.event["headers"]["x-custom"] == ",".join(values)
    assert handler.event.get("cookies", []) == [f"{name}={value}" for pairs in cookie_headers for name, value in pairs]
    assert "cookie" not in handler.event["headers"]


@pytest.fixture
def url_server(handler: FakeHandler) -> Iterator[HttpServer]:
    server = HttpServer(FunctionUrlEmulator(fake_function(handler)), name="test-url").start()
    yield server
    server.stop()
