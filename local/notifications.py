"""S3 `Object Created` events through "EventBridge" to the functions whose rules match, as in the deployed stack.

moto emits no events, so the local AWS stand-in is watched instead: after a request that creates an
object (PutObject, CopyObject, a presigned POST upload, CompleteMultipartUpload) in a bucket whose
template enables EventBridge notifications, the event S3 would send is put on a local bus. The bus
matches it against the template's `Type: EventBridgeRule` patterns (moto's EventBridge pattern matcher)
and invokes each matching function asynchronously, retried as the rule's RetryPolicy says, then sent to
its dead-letter queue. `EventBus.drain()` waits until everything published was delivered, so tests need no sleeps.
"""

import itertools
import json
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote

from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.events import HttpRequest, HttpResponse
from local.s3_post import parse_form
from local.specs import EventRuleSpec, event_rules
from local.template import Template
from local.workers import InvocationFailed

DRAIN_PATH = "/_local/events/drain"
EventSource = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None]


# --- the bus ------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    rule: str
    event_id: str
    attempts: int
    error: str | None  # None: delivered


@dataclass(frozen=True)
class RetryPolicy:
    """A rule target's RetryPolicy (EventBridge's defaults: 185 retries within 24 hours)."""

    maximum_retry_attempts: int = 185
    maximum_event_age_seconds: int = 86400


DeadLetters = Callable[[EventRuleSpec, Mapping[str, Any], Delivery], None]


def _rule_properties(template: Template, rule: EventRuleSpec) -> Mapping[str, Any]:
    function_id, _, event_name = rule.name.partition(".")
    return template.function_properties(function_id)["Events"][event_name].get("Properties") or {}


def dead_letter_queue(template: Template) -> str | None:
    """The logical id of the queue the rules name in DeadLetterConfig (`Arn: !GetAtt Queue.Arn`), if any."""
    for rule in event_rules(template):
        arn = (_rule_properties(template, rule).get("DeadLetterConfig") or {}).get("Arn") or {}
        if "Fn::GetAtt" in arn:
            return str(arn["Fn::GetAtt"][0])
    return None


def retry_policies(template: Template) -> dict[str, RetryPolicy]:
    """Each EventBridgeRule event's RetryPolicy from the template, by rule name (`Function.Event`)."""
    policies = {}
    for rule in event_rules(template):
        policy = template.resolve(_rule_properties(template, rule).get("RetryPolicy")) or {}
        defaults = RetryPolicy()
        policies[rule.name] = RetryPolicy(
            int(policy.get("MaximumRetryAttempts", defaults.maximum_retry_attempts)),
            int(policy.get("MaximumEventAgeInSeconds", defaults.maximum_event_age_seconds)),
        )
    return policies


class EventBus:
    """Invokes the functions of matching rules asynchronously, retried as each rule's RetryPolicy says.

    Events are taken in order; each matching rule's delivery runs on its own thread (so deliveries
    overlap up to the function's concurrency, as Lambda's asynchronous invocations do). A failed
    attempt (the function raised, timed out, crashed or was throttled) is retried with exponential
    backoff from `retry_delay` seconds (at most `MAX_RETRY_DELAY`), until MaximumRetryAttempts or
    MaximumEventAgeInSeconds; then the event goes to `dead_letters` (the rule's dead-letter queue).
    """

    MAX_RETRY_DELAY = 2.0

    def __init__(
        self,
        rules: Sequence[EventRuleSpec],
        functions: Mapping[str, Any],  # local.workers.FunctionPool, or anything with invoke(event)
        *,
        policies: Mapping[str, RetryPolicy] | None = None,
        dead_letters: DeadLetters | None = None,
        retry_delay: float = 0.1,
        log: TextIO | None = None,
    ):
        self.rules = [
            (rule, EventPattern.load(json.dumps(rule.pattern))) for rule in rules if rule.function in functions
        ]
        self.functions = functions
        self.policies = dict(policies or {})
        self.dead_letters = dead_letters
        self.retry_delay = retry_delay
        self.log = log
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[EventSource | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._settled = threading.Condition()
        self._stopping = threading.Event()

    def start(self) -> "EventBus":
        self._thread = threading.Thread(target=self._work, name="event-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # retries waiting for their turn give up
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def publish(self, event: EventSource) -> None:
        """Queue an event, or a function that builds it when its turn comes (None: nothing to send)."""
        self._queue.put(event)

    def drain(self, timeout: float = 30) -> None:
        """Return once every event published so far has been delivered (or dead-lettered)."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            if not self._queue.all_tasks_done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout):
                raise TimeoutError(f"events still being delivered after {timeout} s")
        with self._settled:
            if not self._settled.wait_for(lambda: self._in_flight == 0, max(deadline - time.monotonic(), 0)):
                raise TimeoutError(f"events still being delivered after {timeout} s")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                event = item() if callable(item) else item
                if event is not None:
                    self._dispatch(event)
            except Exception:  # a bug here must not stop the bus
                self._note(f"event bus: {traceback.format_exc()}")
            finally:
                self._queue.task_done()

    def _dispatch(self, event: Mapping[str, Any]) -> None:
        for rule, pattern in self.rules:
            if pattern.matches_event(event):
                with self._settled:
                    self._in_flight += 1
                thread = threading.Thread(target=self._deliver, args=(rule, event), name=f"deliver-{rule.name}")
                thread.daemon = True
                thread.start()

    def _deliver(self, rule: EventRuleSpec, event: Mapping[str, Any]) -> None:
        try:
            delivery = self._attempts(rule, event, self.policies.get(rule.name, RetryPolicy()))
            if delivery.error is not None:
                self._note(f"{rule.name}: event {delivery.event_id} given up after {delivery.attempts} attempts")
                if self.dead_letters is not None:
                    self.dead_letters(rule, event, delivery)
            with self._settled:
                self.deliveries.append(delivery)
                del self.deliveries[:-1000]
        except Exception:
            self._note(f"event bus: {traceback.format_exc()}")
        finally:
            with self._settled:
                self._in_flight -= 1
                self._settled.notify_all()

    def _attempts(self, rule: EventRuleSpec, event: Mapping[str, Any], policy: RetryPolicy) -> Delivery:
        received = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                self.functions[rule.function].invoke(event)
                return Delivery(rule.name, str(event.get("id")), attempt, None)
            except InvocationFailed as exc:
                error = str(exc)
                self._note(f"{rule.name}: attempt {attempt} failed: {error}")
            delay = min(self.retry_delay * 2 ** (attempt - 1), self.MAX_RETRY_DELAY)
            too_old = time.monotonic() - received + delay > policy.maximum_event_age_seconds
            if attempt > policy.maximum_retry_attempts or too_old or self._stopping.wait(delay):
                return Delivery(rule.name, str(event.get("id")), attempt, error)

    def _note(self, message: str) -> None:
        if self.log is not None:
            print(f"[events] {message}", file=self.log, flush=True)


class SqsDeadLetterQueue:
    """A rule's dead-letter queue in the local AWS stand-in: the event as the body, EventBridge's attributes."""

    def __init__(self, sqs: Any, queue_name: str):
        self.sqs = sqs
        self.queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]

    def __call__(self, rule: EventRuleSpec, event: Mapping[str, Any], delivery: Delivery) -> None:
        rule_name = rule.name.replace(".", "-")
        attributes = {
            "RULE_ARN": f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{rule_name}",
            "TARGET_ARN": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{rule.function}",
            "ERROR_CODE": "FunctionError",
            "ERROR_MESSAGE": (delivery.error or "")[:1000],
            "RETRY_ATTEMPTS": str(delivery.attempts - 1),
        }
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(event),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        )


# --- S3 -----------------------------------------------------------------------------------------------

_SIGNING_QUERY = ("x-amz-", "x-id", "awsaccesskeyid", "signature", "expires")  # not sub-resources


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    reason: str  # PutObject | CopyObject | POST Object | CompleteMultipartUpload
    request_id: str
    source_ip: str


def object_created(request: HttpRequest, response: HttpResponse) -> ObjectCreated | None:
    """The object a successful path-style S3 request created, if it created one."""
    if response.status not in (200, 201, 204) or request.header("x-amz-target"):
        return None
    bucket, _, key = unquote(request.raw_path).lstrip("/").partition("/")
    if not bucket:
        return None
    query = {name.lower() for name, _ in parse_qsl(request.raw_query, keep_blank_values=True)}
    subresources = {name for name in query if not name.startswith(_SIGNING_QUERY)}
    request_id = response.header("x-amz-request-id") or uuid.uuid4().hex[:16].upper()
    reason = None
    if request.method == "PUT" and key and not subresources:
        reason = "CopyObject" if request.header("x-amz-copy-source") else "PutObject"
    elif request.method == "POST" and key and subresources == {"uploadid"}:
        reason = "CompleteMultipartUpload"
    elif request.method == "POST" and not key and "multipart/form-data" in (request.header("content-type") or ""):
        key = parse_form(request.header("content-type") or "", request.body).key
        reason = "POST Object" if key else None
    if reason is None or not key:
        return None
    return ObjectCreated(bucket, key, reason, request_id, request.source_ip)


class S3Notifications:
    """Watches the AWS stand-in's requests and publishes S3's EventBridge `Object Created` events."""

    def __init__(self, buckets: Iterable[str], bus: EventBus, s3: Callable[[], Any]):
        self.buckets = set(buckets)
        self.bus = bus
        self._s3 = s3
        self._sequence = itertools.count(1)

    def observe(self, request: HttpRequest, response: HttpResponse) -> None:
        created = object_created(request, response)
        if created is not None and created.bucket in self.buckets:
            sequencer = f"{next(self._sequence):018X}"
            self.bus.publish(lambda: self.event(created, sequencer))

    def event(self, created: ObjectCreated, sequencer: str = "0") -> dict[str, Any] | None:
        """The event S3 sends to EventBridge (None when the object is already gone)."""
        try:
            head = self._s3().head_object(Bucket=created.bucket, Key=created.key)
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


def drain_endpoint(sources: Sequence[Any]) -> Callable[[HttpRequest], HttpResponse | None]:
    """`POST {aws_endpoint}/_local/events/drain`: answers once every S3 event and table stream record so far
    was delivered (each source has `drain(timeout)`), for tests."""

    def gate(request: HttpRequest) -> HttpResponse | None:
        if request.raw_path != DRAIN_PATH:
            return None
        try:
            for source in sources:
                source.drain(timeout=30)
        except TimeoutError as error:
            return HttpResponse.json(504, {"message": str(error)})
        return HttpResponse.json(200, {"drained": True})

    return gate
