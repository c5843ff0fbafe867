"""The local AWS stand-in enforces presigned POST policies as S3 does (moto alone accepts any upload)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.wrappers import Request

from local import aws
from local.s3_post import PostPolicyGate
from local.template import Template
from tests.local_support import request

BUCKET = "post-policy-test"
KEY = "attachments/alice/t1/a1"
ENDPOINT = "http://127.0.0.1:5999"  # only signed for, never contacted


def presigned_post(signature_version: str = "s3v4", **overrides: Any) -> dict[str, Any]:
    s3 = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=overrides.pop("access_key", aws.LOCAL_ACCESS_KEY_ID),
        aws_secret_access_key=overrides.pop("secret_key", aws.LOCAL_SECRET_ACCESS_KEY),
        config=Config(signature_version=signature_version),
    )
    post: dict[str, Any] = s3.generate_presigned_post(
        BUCKET,
        KEY,
        Fields={"Content-Type": "text/plain"},
        Conditions=[{"Content-Type": "text/plain"}, ["content-length-range", 5, 5]],
        ExpiresIn=900,
    )
    return post


def upload(post: dict[str, Any], data: bytes = b"hello", **field_changes: str) -> Request:
    fields = {**post["fields"], **field_changes}
    prepared = requests.Request("POST", post["url"], data=fields, files={"file": ("a.txt", data)}).prepare()
    body = prepared.body if isinstance(prepared.body, bytes) else b""
    return request("POST", f"/{BUCKET}", headers=prepared.headers, body=body)


def refusal(sent: Request, gate: PostPolicyGate | None = None) -> tuple[int, str] | None:
    gate = gate or PostPolicyGate({aws.LOCAL_ACCESS_KEY_ID: aws.LOCAL_SECRET_ACCESS_KEY})
    response = gate(sent)
    if response is None:
        return None
    text = response.get_data().decode()
    return response.status_code, text[text.index("<Code>") + 6 : text.index("</Code>")]


def test_an_upload_that_satisfies_its_policy_goes_through() -> None:
    post = presigned_post()

    assert refusal(upload(post)) is None
    assert refusal(upload(post, signature="AAAA", **{"x-amz-signature": "0" * 64})) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"data": b"hello!"}, (400, "EntityTooLarge")),
        ({"data": b"hey"}, (400, "EntityTooSmall")),
        ({"key": "attachments/mallory/t1/a1"}, (403, "AccessDenied")),
        ({"Content-Type": "text/html"}, (403, "AccessDenied")),
        ({"x-amz-signature": "0" * 64}, (403, "SignatureDoesNotMatch")),
        ({"acl": "public-read"}, (403, "AccessDenied")),
    ],
)
def test_an_upload_outside_its_policy_is_refused(change: dict[str, Any], expected: tuple[int, str]) -> None:
    data = change.pop("data", b"hello")

    assert refusal(upload(presigned_post(), data, **change)) == expected


def test_an_expired_policy_or_an_unknown_key_is_refused() -> None:
    later = PostPolicyGate(
        {aws.LOCAL_ACCESS_KEY_ID: aws.LOCAL_SECRET_ACCESS_KEY}, now=lambda: datetime.now(UTC) + timedelta(hours=1)
    )

    assert refusal(upload(presigned_post()), later) == (403, "AccessDenied")
    assert refusal(upload(presigned_post(access_key="AKIAOTHER", secret_key="other"))) == (403, "InvalidAccessKeyId")


def test_other_requests_are_not_the_gate_s_business() -> None:
    assert refusal(request("PUT", f"/{BUCKET}/{KEY}", headers=[("Content-Type", "text/plain")], body=b"hello")) is None
    assert refusal(request("POST", "/", headers=[("X-Amz-Target", "DynamoDB_20120810.PutItem")], body=b"{}")) is None


def test_the_stand_in_keeps_refused_uploads_out_of_the_bucket(moto_server: aws.MotoServer) -> None:
    moto_server.gates.append(PostPolicyGate({aws.LOCAL_ACCESS_KEY_ID: aws.LOCAL_SECRET_ACCESS_KEY}))
    s3 = aws.client("s3", moto_server.url)
    aws.create_bucket(s3, Template.load(), BUCKET)
    post = s3.generate_presigned_post(BUCKET, KEY, Conditions=[["content-length-range", 5, 5]], ExpiresIn=60)

    too_big = requests.post(post["url"], data=post["fields"], files={"file": ("a", b"hello!")}, timeout=10)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key=KEY)
    fits = requests.post(post["url"], data=post["fields"], files={"file": ("a", b"hello")}, timeout=10)
    stored = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()

    assert (too_big.status_code, "EntityTooLarge" in too_big.text) == (400, True)
    assert (fits.status_code, stored) == (204, b"hello")
