"""HTTP requests to Lambda events and Lambda results back to HTTP, as API Gateway and function URLs do.

One implementation for both entry points (payload format 2.0), so the HTTP API emulator and the
function URL emulator cannot drift apart:

- headers lower-cased, repeated headers joined with commas; `cookie` headers moved to `cookies`;
- `queryStringParameters` decoded, repeated keys joined with commas; `rawQueryString` as sent;
- the body as text when the content type is textual, else base64 with `isBase64Encoded: true`;
- the result: `statusCode`/`headers`/`cookies`/`body`/`isBase64Encoded`, or any other
  JSON value as a "simple" response (200, `application/json`).
"""

import base64
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from local import LOCAL_ACCOUNT_ID

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/x-yaml")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as received: `target` is the raw request target (path and query, still encoded)."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The header's values joined with commas, or `default` (case-insensitive)."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else default


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else default

    @classmethod
    def json(cls, status: int, body: Any, headers: Sequence[tuple[str, str]] = ()) -> "HttpResponse":
        data = json.dumps(body, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json"), *headers], data)


class InvalidLambdaResponse(Exception):
    """The function returned something API Gateway cannot turn into an HTTP response."""


@dataclass(frozen=True)
class RequestIdentity:
    """Where the event says it came from (API Gateway and function URLs fill these differently)."""

    api_id: str
    account_id: str = LOCAL_ACCOUNT_ID
    stage: str = "$default"
    domain_name: str | None = None  # default: the Host header without its port


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway / function URLs pass a body with this content type as text (else base64)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith("+json")
        or media_type.endswith("+xml")
    )


def request_id() -> str:
    """An id shaped like API Gateway's `apigw-requestid` (base64 of 10 random bytes)."""
    return base64.b64encode(os.urandom(10)).decode().rstrip("=") + "="


def build_event(
    request: HttpRequest,
    identity: RequestIdentity,
    *,
    route_key: str = "$default",
    path_parameters: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
    decode_path: bool = False,
    request_id_value: str | None = None,
) -> dict[str, Any]:
    """A payload format 2.0 event for this request.

    `decode_path`: HTTP APIs put the percent-decoded path in `rawPath`; function URLs keep it encoded.
    `authorizer`: the `requestContext.authorizer` value (None: no key, as on a function URL with auth NONE).
    """
    now = time.time()
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name.lower() == "cookie":  # werkzeug's server joins repeated Cookie headers with ","
            cookies.extend(part.strip() for part in value.replace(",", ";").split(";") if part.strip())
        else:
            headers[name.lower()] = f"{headers[name.lower()]},{value}" if name.lower() in headers else value
    host = headers.get("host", "localhost")
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    if ":" in host:
        headers.setdefault("x-forwarded-port", host.rsplit(":", 1)[1])
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    path = unquote(request.raw_path) if decode_path else request.raw_path
    domain = identity.domain_name or host.rsplit(":", 1)[0]
    moment = datetime.fromtimestamp(now, UTC)
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    optional = {"cookies": cookies, "queryStringParameters": query, "pathParameters": dict(path_parameters or {})}
    context = {"accountId": identity.account_id, "apiId": identity.api_id, "authorizer": authorizer}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        **{key: value for key, value in optional.items() if value},
        "requestContext": {
            **{key: value for key, value in context.items() if value is not None},
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.method.upper(),
                "path": path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id_value or request_id(),
            "routeKey": route_key,
            "stage": identity.stage,
            "time": f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000",
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if request.body:
        text = is_text(headers.get("content-type"))
        try:
            event["body"] = request.body.decode() if text else None
        except UnicodeDecodeError:
            event["body"] = None
        if event["body"] is None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(request.body).decode(), True
    event["stageVariables"] = None
    return event


def to_http_response(result: Any) -> HttpResponse:
    """Turn a payload 2.0 function result into the HTTP response API Gateway / function URLs send."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # A "simple" response: any JSON value is the body of a 200.
        if isinstance(result, str):
            return HttpResponse(200, [("content-type", "application/json")], result.encode())
        try:
            return HttpResponse.json(200, result)
        except (TypeError, ValueError) as exc:
            raise InvalidLambdaResponse(f"the function result is not JSON: {exc}") from exc
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise InvalidLambdaResponse(f"statusCode must be an integer, not {result['statusCode']!r}") from exc
    if not 100 <= status <= 599:
        raise InvalidLambdaResponse(f"statusCode {status} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_text(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(str(body), validate=True)
        except ValueError as exc:
            raise InvalidLambdaResponse("isBase64Encoded is true but the body is not base64") from exc
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return HttpResponse(status, headers, data)


def _header_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
