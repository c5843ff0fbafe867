"""S3 uploads reach the functions of the template's EventBridge rules as `Object Created` events, locally too."""

import json
from dataclasses import replace
from typing import Any

import pytest
import requests
from moto.events.models import EventPattern

from local import aws
from local.events import Response
from local.notifications import EventBus, S3Notifications, object_created
from local.specs import EventRuleSpec, RetryPolicy, event_rules
from local.template import Template
from tests.local_support import FakeHandler, fake_function, request

BUCKET = "notify-test-attachments"


def s3_event(bucket: str = BUCKET, key: str = "attachments/alice/t1/a1", **detail: Any) -> dict[str, Any]:
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 3}, **detail},
    }


def upload_rule(template: Template) -> EventRuleSpec:
    (rule,) = [rule for rule in event_rules(template) if rule.pattern.get("source") == ["aws.s3"]]
    return rule


def test_the_template_rule_matches_attachment_uploads_to_its_bucket_only() -> None:
    rule = upload_rule(Template.load(resource_names={"AttachmentsBucket": BUCKET}))
    pattern = EventPattern.load(json.dumps(rule.pattern))

    assert pattern.matches_event(s3_event())
    assert not pattern.matches_event(s3_event(key="exports/alice/x"))
    assert not pattern.matches_event(s3_event(bucket="someone-elses-bucket"))
    assert not pattern.matches_event({**s3_event(), "detail-type": "Object Deleted"})


@pytest.mark.parametrize(
    ("operator", "key", "expected"),
    [
        ({"suffix": ".png"}, "a/b.png", True),
        ({"suffix": ".png"}, "a/b.txt", False),
        ({"anything-but": {"prefix": "exports/"}}, "attachments/x", True),
        ({"anything-but": {"prefix": "exports/"}}, "exports/x", False),
        ({"exists": True}, "a", True),
        ({"wildcard": "attachments/*/t1/*"}, "attachments/alice/t1/a1", True),
    ],
)
def test_operators_the_template_does_not_use_yet_are_matched_too(
    operator: dict[str, Any], key: str, expected: bool
) -> None:
    pattern = EventPattern.load(json.dumps({"detail": {"object": {"key": [operator]}}}))

    assert pattern.matches_event(s3_event(key=key)) is expected


def created(
    method: str, target: str, status: int = 200, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> Any:
    sent = request(
        method, target, headers=[("Host", "127.0.0.1:5000"), *(headers or [])], body=body, source_ip="198.51.100.9"
    )
    return object_created(sent, Response(status=status, headers=[("x-amz-request-id", "REQ1")]))


def test_only_requests_that_create_an_object_are_noticed() -> None:
    form = (
        b'--B\r\nContent-Disposition: form-data; name="key"\r\n\r\nattachments/u/t/${filename}\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="cat.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--B--\r\n"
    )

    put = created("PUT", f"/{BUCKET}/attachments/u/t/a%20b?x-id=PutObject")
    copy = created("PUT", f"/{BUCKET}/attachments/u/t/c", headers=[("x-amz-copy-source", "/b/k")])
    post = created("POST", f"/{BUCKET}", 204, [("Content-Type", "multipart/form-data; boundary=B")], form)
    complete = created("POST", f"/{BUCKET}/attachments/u/t/big?uploadId=U1")

    assert put is not None and (put.bucket, put.key, put.reason) == (BUCKET, "attachments/u/t/a b", "PutObject")
    assert (put.request_id, put.source_ip) == ("REQ1", "198.51.100.9")
    assert copy is not None and copy.reason == "CopyObject"
    assert post is not None and (post.key, post.reason) == ("attachments/u/t/cat.png", "POST Object")
    assert complete is not None and complete.reason == "CompleteMultipartUpload"
    assert created("PUT", f"/{BUCKET}/k?tagging") is None
    assert created("PUT", f"/{BUCKET}/k?uploadId=U1&partNumber=1") is None
    assert created("PUT", f"/{BUCKET}/k", status=403) is None
    assert created("PUT", f"/{BUCKET}") is None  # CreateBucket
    assert created("DELETE", f"/{BUCKET}/k") is None
    assert created("POST", "/", headers=[("X-Amz-Target", "DynamoDB_20120810.PutItem")]) is None


@pytest.fixture
def moto(moto_server: aws.MotoServer) -> aws.MotoServer:
    aws.create_bucket(aws.client("s3", moto_server.url), Template.load(), BUCKET)
    return moto_server


def test_uploads_reach_the_rule_function_with_s3_event_fields(moto: aws.MotoServer) -> None:
    # Given the template's rule, a fake function behind it, and the bus watching the AWS stand-in
    rule = upload_rule(Template.load(resource_names={"AttachmentsBucket": BUCKET}))
    handler = FakeHandler({"outcome": "ok"})
    bus = EventBus([rule], {rule.function: fake_function(handler)}, aws.client("sqs", moto.url))
    s3 = aws.client("s3", moto.url)
    moto.observers.append(S3Notifications([BUCKET], bus, s3).observe)
    post = s3.generate_presigned_post(BUCKET, "attachments/alice/t1/a2", ExpiresIn=60)

    # When objects are written: a PUT, a browser-style POST, and one outside the rule's prefix
    s3.put_object(Bucket=BUCKET, Key="attachments/alice/t1/a1", Body=b"abc")
    uploaded = requests.post(post["url"], data=post["fields"], files={"file": ("a.txt", b"hello")}, timeout=10)
    s3.put_object(Bucket=BUCKET, Key="elsewhere/x", Body=b"abc")
    bus.drain(timeout=10)
    bus.stop()

    # Then the function got exactly the two attachment events, shaped as S3 sends them, and nothing was dead-lettered
    assert uploaded.status_code == 204
    events = sorted((event for event, _ in handler.calls), key=lambda event: event["detail"]["object"]["key"])
    assert [event["detail"]["object"]["key"] for event in events] == [
        "attachments/alice/t1/a1",
        "attachments/alice/t1/a2",
    ]
    first, second = events
    assert (first["source"], first["detail-type"], first["resources"]) == (
        "aws.s3",
        "Object Created",
        [f"arn:aws:s3:::{BUCKET}"],
    )
    assert first["detail"]["object"]["size"] == 3 and first["detail"]["object"]["etag"]
    assert first["detail"]["object"]["version-id"], "the bucket is versioned"
    assert (first["detail"]["reason"], second["detail"]["reason"]) == ("PutObject", "POST Object")
    assert second["detail"]["object"]["size"] == 5
    assert first["detail"]["object"]["sequencer"] < second["detail"]["object"]["sequencer"]
    queue = bus.dead_letters[rule.name].url
    assert "Messages" not in aws.client("sqs", moto.url).receive_message(QueueUrl=queue, WaitTimeSeconds=0)


@pytest.mark.parametrize(("policy", "attempts"), [(None, 11), (RetryPolicy(2, 3600), 3), (RetryPolicy(10, 0), 1)])
def test_a_failing_function_is_retried_as_the_retry_policy_says_then_dead_lettered(
    moto: aws.MotoServer, policy: RetryPolicy | None, attempts: int
) -> None:
    # Given a function that always fails behind the template's rule (None: the template's own RetryPolicy)
    calls: list[str] = []

    def failing(event: dict[str, Any], context: Any) -> None:
        calls.append(event["id"])
        raise RuntimeError("cannot handle it")

    rule = upload_rule(Template.load(resource_names={"AttachmentsBucket": BUCKET}))
    rule = rule if policy is None else replace(rule, retry_policy=policy)
    sqs = aws.client("sqs", moto.url)
    bus = EventBus([rule], {rule.function: fake_function(failing)}, sqs, retry_delay=0)
    s3 = aws.client("s3", moto.url)
    moto.observers.append(S3Notifications([BUCKET], bus, s3).observe)

    # When an attachment lands
    s3.put_object(Bucket=BUCKET, Key="attachments/alice/t1/a1", Body=b"abc")
    bus.drain(timeout=10)
    bus.stop()

    # Then the same event was tried 1 + MaximumRetryAttempts times (fewer once too old), then dead-lettered
    assert len(calls) == attempts and len(set(calls)) == 1, "the same event each time"
    received = sqs.receive_message(
        QueueUrl=bus.dead_letters[rule.name].url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert [json.loads(message["Body"])["id"] for message in received] == calls[:1]
    attributes = {name: value["StringValue"] for name, value in received[0]["MessageAttributes"].items()}
    assert attributes["RETRY_ATTEMPTS"] == str(attempts - 1) and "cannot handle it" in attributes["ERROR_MESSAGE"]
    assert "RuntimeError" in attributes["ERROR_MESSAGE"]
    assert attributes["TARGET_ARN"].endswith(f":function:{rule.function}")


def test_the_template_rule_retries_ten_times_within_an_hour_into_its_queue() -> None:
    rule = upload_rule(Template.load(resource_names={"AttachmentsBucket": BUCKET}))
    assert rule.retry_policy == RetryPolicy(10, 3600)
    assert rule.dead_letter_queue == "UploadEventsDeadLetterQueue"
