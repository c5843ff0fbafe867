"""The docs site of `make run` and the bucket's CORS on the local S3, without a browser."""

import json

import requests

from local import aws
from local.docs import DocsSite, cors_origins, origins_of, served_document
from local.events import Response
from local.s3_cors import BucketCors
from local.template import Template
from tests.local_support import request

BUCKET = "attachments-bucket"
RULES = [{"AllowedMethods": ["POST", "GET"], "AllowedOrigins": ["http://docs.test"], "ExposeHeaders": ["ETag"]}]


def site() -> DocsSite:
    return DocsSite(served_document("http://api.test/dev", "http://url.test", "http://export.test"), "a.b.c")


def test_the_page_holds_the_token_and_reads_the_document() -> None:
    page = site()(request("GET", "/"))

    assert page.status_code == 200 and page.headers.get("content-type", "").startswith("text/html")
    assert b'"a.b.c"' in page.get_data() and b'url: "/openapi.json"' in page.get_data()


def test_the_served_document_points_at_the_running_stack() -> None:
    document = json.loads(site()(request("GET", "/openapi.json")).get_data())

    assert [server["url"] for server in document["servers"][:2]] == ["http://api.test/dev", "http://url.test"]
    assert document["paths"]["/tasks/export"]["servers"][0]["url"] == "http://export.test"
    assert not any("127.0.0.1" in server["url"] for server in document["servers"])


def test_the_swagger_ui_assets_are_served_and_nothing_outside_them() -> None:
    docs = site()

    assert docs(request("GET", "/swagger-ui-bundle.js")).status_code == 200
    assert docs(request("GET", "/../openapi.json")).status_code == 404
    assert docs(request("GET", "/vendor/../index.html")).status_code == 404
    assert docs(request("POST", "/")).status_code == 405


def test_the_docs_origin_is_added_to_the_templates_cors_origins() -> None:
    origins = cors_origins(Template.load(), *origins_of("http://127.0.0.1:3004")).split(",")

    assert origins[-2:] == ["http://127.0.0.1:3004", "http://localhost:3004"]
    assert Template.load().parameters["CorsAllowedOrigins"][0] in origins


def bucket_response(origin: str | None, method: str = "POST", path: str = f"/{BUCKET}") -> Response:
    headers = {"Origin": origin} if origin else {}
    response = Response(status=204, headers=[("Access-Control-Allow-Origin", "*"), ("Vary", "Origin")])
    BucketCors(BUCKET, RULES).decorate(request(method, path, headers=headers), response)
    return response


def test_an_allowed_origin_gets_the_rules_headers() -> None:
    response = bucket_response("http://docs.test")

    assert response.headers.get("access-control-allow-origin") == "http://docs.test"
    assert response.headers.get("access-control-expose-headers") == "ETag"
    assert response.headers.get("vary") == "Origin"


def test_an_origin_or_method_the_rules_do_not_name_gets_no_cors_headers() -> None:
    for response in (bucket_response("http://evil.test"), bucket_response("http://docs.test", method="DELETE")):
        assert not [name for name, _ in response.headers if name.lower().startswith("access-control-")]


def test_responses_of_other_services_are_left_alone() -> None:
    response = bucket_response("http://evil.test", path="/another-bucket/key")

    assert response.headers.get("access-control-allow-origin") == "*"


def test_the_stand_in_sends_the_rules_headers_instead_of_motos(moto_server: aws.MotoServer) -> None:
    moto_server.observers.append(BucketCors(BUCKET, RULES).decorate)
    aws.client("s3", moto_server.url).create_bucket(Bucket=BUCKET)

    allowed = requests.get(f"{moto_server.url}/{BUCKET}/a-key", headers={"Origin": "http://docs.test"}, timeout=10)
    other = requests.get(f"{moto_server.url}/{BUCKET}/a-key", headers={"Origin": "http://evil.test"}, timeout=10)

    assert allowed.headers.get("access-control-allow-methods") == "POST, GET"  # moto sends none
    assert not [name for name in other.headers if name.lower().startswith("access-control-")]  # moto echoes any
