"""S3 `Object Created` events through "EventBridge" to the functions whose rules match, as in the deployed stack.

moto emits no events, so the local AWS stand-in is watched instead: after a request that creates an
object (PutObject, CopyObject, a presigned POST upload, CompleteMultipartUpload) in a bucket whose
template enables EventBridge notifications, the event S3 would send is put on a local bus. The bus
matches it against the template's `Type: EventBridgeRule` patterns (moto's EventBridge pattern matcher)
and invokes each matching function asynchronously, retried as the rule's RetryPolicy says, then sent to
its dead-letter queue. `EventBus.drain()` waits until everything published was delivered, so tests need
no sleeps. The retrying and the dead-letter queues (`Deliveries`, `DeadLetterQueue`) serve local/streams.py too.
"""

import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import ClientError
from moto.events.models import EventPattern
from werkzeug.wrappers import Request, Response

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.events import json_response
from local.roles import queue_name
from local.s3_post import parse_form
from local.specs import EventRuleSpec, RetryPolicy
from local.workers import InvocationFailed

DRAIN_PATH = "/_local/events/drain"


# --- delivery to a function, for the bus and for local/streams.py -------------------------------------


class Deliveries:
    """Delivers payloads to functions as an event source does: a failed attempt (the function raised, timed
    out, crashed or was throttled: `InvocationFailed`) is retried with exponential backoff from `retry_delay`
    seconds (at most `MAX_RETRY_DELAY`, where AWS waits minutes), until the policy's MaximumRetryAttempts or
    MaximumEventAgeInSeconds, or until `stop()`.
    """

    MAX_RETRY_DELAY = 2.0

    def __init__(self, *, log: TextIO | None = None, retry_delay: float = 0.1):
        self.log = log or sys.stderr
        self.retry_delay = retry_delay
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()  # retries waiting for their turn give up

    def retry(self, name: str, send: Callable[[], object], policy: RetryPolicy) -> tuple[int, str | None]:
        """Call `send` until it succeeds or the policy gives up: the attempts, and the last error (None: delivered)."""
        received = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                send()
                return attempt, None
            except InvocationFailed as failure:
                error = str(failure)
                self.note(name, f"attempt {attempt} failed: {error}")
            delay = min(self.retry_delay * 2 ** (attempt - 1), self.MAX_RETRY_DELAY)
            too_old = time.monotonic() - received + delay > policy.maximum_event_age_seconds
            if attempt > policy.maximum_retry_attempts or too_old or self._stopping.wait(delay):
                self.note(name, f"given up after {attempt} attempts")
                return attempt, error

    def note(self, name: str, message: str) -> None:
        print(f"[{name}] {message}", file=self.log, flush=True)


class DeadLetterQueue:
    """An SQS queue of the template (by logical id), made in the AWS stand-in, for what could not be delivered."""

    def __init__(self, sqs: Any, logical_id: str, *, sender: Any = None):
        """Made with `sqs`; messages are sent with `sender` (by default `sqs`)."""
        self.sqs = sender or sqs
        self.url: str = sqs.create_queue(QueueName=queue_name(logical_id))["QueueUrl"]

    def send(self, body: Any, attributes: Mapping[str, str] | None = None) -> None:
        strings = {name: {"DataType": "String", "StringValue": value} for name, value in (attributes or {}).items()}
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body), MessageAttributes=strings)


# --- the bus ------------------------------------------------------------------------------------------


class EventBus(Deliveries):
    """Invokes the function of every rule whose pattern matches, asynchronously; what cannot be delivered
    goes to the rule's dead-letter queue, with EventBridge's attributes. Each event, and each matching rule's
    delivery, has a thread of its own, so deliveries overlap up to the function's concurrency, as Lambda's
    asynchronous invocations do.
    """

    def __init__(
        self,
        rules: Sequence[EventRuleSpec],
        functions: Mapping[str, Any],  # by logical id: local.workers.FunctionPool, or anything with invoke(event)
        sqs: Any,
        **options: Any,
    ):
        super().__init__(**options)
        self.rules = [(rule, EventPattern.load(json.dumps(rule.pattern))) for rule in rules]
        self.functions = functions
        self.dead_letters = {
            rule.name: DeadLetterQueue(sqs, rule.dead_letter_queue) for rule in rules if rule.dead_letter_queue
        }
        self._in_flight = 0
        self._settled = threading.Condition()

    def publish(self, build: Callable[[], Mapping[str, Any] | None]) -> None:
        """Send the event that `build` makes on a thread of its own (None: nothing to send)."""
        self._spawn(self._dispatch, build)

    def drain(self, timeout: float = 30) -> None:
        """Return once every event published so far has been delivered (or dead-lettered)."""
        with self._settled:
            if not self._settled.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"events still being delivered after {timeout} s")

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        with self._settled:
            self._in_flight += 1
        threading.Thread(target=self._run, args=(target, *args), daemon=True).start()

    def _run(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        finally:
            with self._settled:
                self._in_flight -= 1
                self._settled.notify_all()

    def _dispatch(self, build: Callable[[], Mapping[str, Any] | None]) -> None:
        event = build()
        for rule, pattern in self.rules:
            if event is not None and pattern.matches_event(event):
                self._spawn(self._deliver, rule, event)

    def _deliver(self, rule: EventRuleSpec, event: Mapping[str, Any]) -> None:
        function = self.functions[rule.function]
        attempts, error = self.retry(rule.name, lambda: function.invoke(event), rule.retry_policy)
        if error is not None and rule.name in self.dead_letters:
            attributes = {
                "RULE_ARN": f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{rule.name.replace('.', '-')}",
                "TARGET_ARN": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{rule.function}",
                "ERROR_CODE": "FunctionError",
                "ERROR_MESSAGE": error[:1000],
                "RETRY_ATTEMPTS": str(attempts - 1),
            }
            self.dead_letters[rule.name].send(event, attributes)


# --- S3 -----------------------------------------------------------------------------------------------

_SIGNING_QUERY = ("x-amz-", "x-id", "awsaccesskeyid", "signature", "expires")  # not sub-resources


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    reason: str  # PutObject | CopyObject | POST Object | CompleteMultipartUpload
    request_id: str
    source_ip: str


def object_created(request: Request, response: Response) -> ObjectCreated | None:
    """The object a successful path-style S3 request created, if it created one."""
    if response.status_code not in (200, 201, 204) or request.headers.get("x-amz-target"):
        return None
    bucket, _, key = request.path.lstrip("/").partition("/")
    if not bucket:
        return None
    subresources = {name.lower() for name in request.args if not name.lower().startswith(_SIGNING_QUERY)}
    request_id = response.headers.get("x-amz-request-id") or uuid.uuid4().hex[:16].upper()
    reason = None
    content_type = request.headers.get("content-type", "")
    if request.method == "PUT" and key and not subresources:
        reason = "CopyObject" if request.headers.get("x-amz-copy-source") else "PutObject"
    elif request.method == "POST" and key and subresources == {"uploadid"}:
        reason = "CompleteMultipartUpload"
    elif request.method == "POST" and not key and "multipart/form-data" in content_type:
        key = parse_form(content_type, request.get_data()).key
        reason = "POST Object" if key else None
    if reason is None or not key:
        return None
    return ObjectCreated(bucket, key, reason, request_id, str(request.remote_addr))


class S3Notifications:
    """Watches the AWS stand-in's requests and publishes S3's EventBridge `Object Created` events."""

    def __init__(self, buckets: Iterable[str], bus: EventBus, s3: Any):
        self.buckets = set(buckets)
        self.bus = bus
        self.s3 = s3
        self._sequence = itertools.count(1)

    def observe(self, request: Request, response: Response) -> None:
        created = object_created(request, response)
        if created is not None and created.bucket in self.buckets:
            sequencer = f"{next(self._sequence):018X}"
            self.bus.publish(lambda: self.event(created, sequencer))

    def event(self, created: ObjectCreated, sequencer: str) -> dict[str, Any] | None:
        """The event S3 sends to EventBridge (None when the object is already gone)."""
        try:
            head = self.s3.head_object(Bucket=created.bucket, Key=created.key)
        except ClientError:
            return None
        detail_object = {
            "key": created.key,
            "size": head["ContentLength"],
            "etag": str(head.get("ETag", "")).strip('"'),
            "sequencer": sequencer,
        }
        if head.get("VersionId") and head["VersionId"] != "null":
            detail_object["version-id"] = head["VersionId"]
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": LOCAL_ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": LOCAL_REGION,
            "resources": [f"arn:aws:s3:::{created.bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": created.bucket},
                "object": detail_object,
                "request-id": created.request_id,
                "requester": LOCAL_ACCOUNT_ID,
                "source-ip-address": created.source_ip,
                "reason": created.reason,
            },
        }


def drain_endpoint(sources: Sequence[Any]) -> Callable[[Request], Response | None]:
    """`POST {aws_endpoint}/_local/events/drain`: answers once every S3 event and table stream record so far
    was delivered (each source has `drain(timeout)`), for tests."""

    def gate(request: Request) -> Response | None:
        if request.path != DRAIN_PATH:
            return None
        try:
            for source in sources:
                source.drain(timeout=30)
        except TimeoutError as error:
            return json_response(504, {"message": str(error)})
        return json_response(200, {"drained": True})

    return gate
