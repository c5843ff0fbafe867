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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import werkzeug.wrappers
from werkzeug.wrappers import Request

from local import LOCAL_ACCOUNT_ID

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/x-yaml")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Response(werkzeug.wrappers.Response):
    """werkzeug's response, without the content type it would add: API Gateway adds none the function did not give."""

    default_mimetype = None


def json_response(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, [("content-type", "application/json"), *headers])


def raw_path(request: Request) -> str:
    """The path as sent, percent-encoding kept (werkzeug's `request.path` is decoded)."""
    return str(request.environ["REQUEST_URI"]).split("?", 1)[0] or "/"


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
    request: Request,
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
    # werkzeug's server joins repeated headers with "," (Cookie too: its cookies are split at both)
    headers = {name.lower(): value for name, value in request.headers if name.lower() != "cookie"}
    cookie = request.headers.get("cookie", "").replace(",", ";")
    cookies = [part.strip() for part in cookie.split(";") if part.strip()]
    host = headers.get("host", "localhost")
    headers.setdefault("x-forwarded-for", str(request.remote_addr))
    headers.setdefault("x-forwarded-proto", "http")
    if ":" in host:
        headers.setdefault("x-forwarded-port", host.rsplit(":", 1)[1])
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    path = unquote(raw_path(request)) if decode_path else raw_path(request)
    domain = identity.domain_name or host.rsplit(":", 1)[0]
    moment = datetime.fromtimestamp(now, UTC)
    query = {name: ",".join(request.args.getlist(name)) for name in request.args}
    optional = {"cookies": cookies, "queryStringParameters": query, "pathParameters": dict(path_parameters or {})}
    context = {"accountId": identity.account_id, "apiId": identity.api_id, "authorizer": authorizer}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": request.query_string.decode(),
        "headers": headers,
        **{key: value for key, value in optional.items() if value},
        "requestContext": {
            **{key: value for key, value in context.items() if value is not None},
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.method.upper(),
                "path": path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr,
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
    body = request.get_data()
    if body:
        text = is_text(headers.get("content-type"))
        try:
            event["body"] = body.decode() if text else None
        except UnicodeDecodeError:
            event["body"] = None
        if event["body"] is None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    event["stageVariables"] = None
    return event


def to_http_response(result: Any) -> Response:
    """Turn a payload 2.0 function result into the HTTP response API Gateway / function URLs send."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # A "simple" response: any JSON value is the body of a 200.
        if isinstance(result, str):
            return Response(result, 200, [("content-type", "application/json")])
        try:
            return json_response(200, result)
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
        if str(name).lower() != "transfer-encoding":  # the server frames the body; its length is werkzeug's
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
    return Response(data, status, headers)


def _header_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
