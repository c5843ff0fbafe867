"""DynamoDB stream records to functions, as a Lambda event source mapping delivers them.

For each `AWS::Lambda::EventSourceMapping` of the template whose source is a table's stream, the local
table gets the stream its `StreamSpecification` declares, and a thread polls it (every shard, from the
trim horizon), keeps the records that match the mapping's `FilterCriteria` (EventBridge patterns, matched
by moto), and invokes the function with batches of at most `BatchSize` records. Items a function reports in
`batchItemFailures` (or a whole batch that raised) are retried up to `MaximumRetryAttempts` times, as
local/notifications.py retries events, then sent to the `OnFailure` destination queue. `drain()` waits until
every record written so far was handled, so tests need no sleeps.
"""

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moto.events.models import EventPattern

from local.notifications import DeadLetterQueue, Deliveries
from local.specs import RetryPolicy, queue_logical_id
from local.template import Template
from local.workers import InvocationFailed

POLL_SECONDS = 0.1  # how often an idle poller asks the stream again (Lambda polls about four times a second)


@dataclass(frozen=True)
class StreamMapping:
    name: str
    function: str  # logical id
    table: str  # logical id
    batch_size: int
    retry_policy: RetryPolicy
    filters: tuple[EventPattern, ...]
    on_failure_queue: str | None  # logical id of an SQS queue

    def accepts(self, record: Mapping[str, Any]) -> bool:
        return not self.filters or any(pattern.matches_event(record) for pattern in self.filters)


def stream_mappings(template: Template) -> list[StreamMapping]:
    """The template's event source mappings that read a table's stream."""
    found = []
    for name in template.logical_ids("AWS::Lambda::EventSourceMapping"):
        properties = template.resources[name].get("Properties") or {}
        source = properties.get("EventSourceArn") or {}
        attribute = source.get("Fn::GetAtt") if isinstance(source, dict) else None
        if not (isinstance(attribute, list) and attribute[1] == "StreamArn"):
            continue
        function = properties.get("FunctionName") or {}
        destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        patterns = (properties.get("FilterCriteria") or {}).get("Filters") or []
        found.append(
            StreamMapping(
                name=name,
                function=str(function.get("Ref", "")).removesuffix(".Alias")
                if isinstance(function, dict)
                else str(function),
                table=str(attribute[0]),
                batch_size=int(properties.get("BatchSize", 100)),
                retry_policy=RetryPolicy(int(properties.get("MaximumRetryAttempts", 10_000))),
                filters=tuple(EventPattern.load(str(filter_["Pattern"])) for filter_ in patterns),
                on_failure_queue=queue_logical_id(destination),
            )
        )
    return found


class StreamPoller(Deliveries):
    """One mapping's poller: a thread reading every shard of the table's stream and delivering batches."""

    def __init__(
        self,
        mapping: StreamMapping,
        function: Any,
        streams: Any,
        stream_arn: str,
        sqs: Any,
        *,
        sender: Any = None,
        **options: Any,
    ):
        """`sqs` makes the OnFailure queue; `sender` (by default `sqs`) sends to it, with the function's role."""
        super().__init__(**options)
        self.mapping = mapping
        self._function = function  # local.workers.FunctionPool, or anything with invoke(event)
        self._streams = streams
        self._stream_arn = stream_arn
        queue = mapping.on_failure_queue
        self.dead_letters = DeadLetterQueue(sqs, queue, sender=sender) if queue else None
        self._iterators: dict[str, str | None] = {}
        self._idle = threading.Condition()
        self._quiet_passes = 0
        self._thread = threading.Thread(target=self._run, name=f"stream-{mapping.name}", daemon=True)

    def start(self) -> "StreamPoller":
        self._thread.start()
        return self

    def join(self, timeout: float = 10) -> None:
        """Wait for the thread to end, after `stop()` (which only tells it to)."""
        self._thread.join(timeout)

    def drain(self, timeout: float = 30) -> None:
        """Return once two whole passes over the stream found nothing new (everything before was delivered)."""
        with self._idle:
            target = self._quiet_passes + 2
            if not self._idle.wait_for(lambda: self._quiet_passes >= target, timeout):
                raise TimeoutError(f"{self.mapping.name}: stream records still pending after {timeout} s")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delivered = self._poll_once()
            except Exception as error:  # a stand-in hiccup: say so, poll again
                self.note(self.mapping.name, f"polling failed: {error}")
                delivered = 0
            if delivered == 0:
                with self._idle:
                    self._quiet_passes += 1
                    self._idle.notify_all()
                self._stopping.wait(POLL_SECONDS)

    def _poll_once(self) -> int:
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        delivered = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator")
            records = [_as_event_record(record) for record in response.get("Records", [])]
            wanted = [record for record in records if self.mapping.accepts(record)]
            for start in range(0, len(wanted), self.mapping.batch_size):
                self._deliver(wanted[start : start + self.mapping.batch_size])
            delivered += len(records)
        return delivered

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        pending = batch

        def send() -> None:
            nonlocal pending
            result = self._function.invoke({"Records": pending})
            failed = {item.get("itemIdentifier") for item in (result or {}).get("batchItemFailures", [])}
            if failed:
                first = next(
                    (n for n, record in enumerate(pending) if record["dynamodb"]["SequenceNumber"] in failed), 0
                )
                pending = pending[first:]  # Lambda retries from the first failed item on
                raise InvocationFailed("BatchItemFailures", f"{len(failed)} of {len(pending)} records failed")

        _, error = self.retry(self.mapping.name, send, self.mapping.retry_policy)
        if error is not None and self.dead_letters is not None:
            self.dead_letters.send({"reason": error, "records": pending})


def enable_stream(dynamodb: Any, table_name: str, view_type: str) -> str:
    """The table's stream ARN, turning the stream on as the template declares it if it is off."""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    if not table.get("StreamSpecification", {}).get("StreamEnabled"):
        dynamodb.update_table(
            TableName=table_name, StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type}
        )
        deadline = time.monotonic() + 30
        while "LatestStreamArn" not in (table := dynamodb.describe_table(TableName=table_name)["Table"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{table_name}: no stream after 30 s")
            time.sleep(0.1)
    return str(table["LatestStreamArn"])


def _as_event_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A GetRecords record as Lambda puts it in the event (epoch seconds, not a datetime)."""
    event = json.loads(json.dumps(record, default=_epoch))
    event.setdefault("eventSource", "aws:dynamodb")
    return dict(event)


def _epoch(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
