"""Table stream records reach functions as the template's event source mapping delivers them, locally too."""

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from local import aws
from local.specs import RetryPolicy
from local.streams import StreamMapping, StreamPoller, enable_stream, stream_mappings
from local.template import Template
from tests.local_support import fake_function

TABLE = "streams-test-tasks"


def removal(sk: str, *, has_attachments: bool | None = True, event_name: str = "REMOVE") -> dict[str, Any]:
    old_image = {"pk": {"S": "USER#alice"}, "sk": {"S": sk}}
    if has_attachments is not None:
        old_image["hasAttachments"] = {"BOOL": has_attachments}
    return {
        "eventName": event_name,
        "dynamodb": {"Keys": {"pk": old_image["pk"], "sk": {"S": sk}}, "OldImage": old_image},
    }


def test_the_clean_up_mapping_takes_removed_tasks_that_had_attachments_only() -> None:
    (mapping,) = [m for m in stream_mappings(Template.load()) if m.function == "TaskCleanupFunction"]

    assert (mapping.function, mapping.table, mapping.batch_size) == ("TaskCleanupFunction", "TasksTable", 10)
    assert (mapping.retry_policy.maximum_retry_attempts, mapping.on_failure_queue) == (10, "TaskCleanupDeadLetterQueue")
    assert mapping.accepts(removal("TASK#t1"))
    assert not mapping.accepts(removal("TASK#t1", has_attachments=False))
    assert not mapping.accepts(removal("TASK#t1", has_attachments=None))
    assert not mapping.accepts(removal("TASK#t1", event_name="MODIFY"))
    assert not mapping.accepts(removal("ATT#t1#a1"))


@pytest.fixture
def moto(moto_server: aws.MotoServer) -> aws.MotoServer:
    aws.create_table(aws.client("dynamodb", moto_server.url), Template.load(), TABLE)
    return moto_server


def test_batches_are_retried_from_their_first_failed_record_then_sent_to_the_on_failure_queue(
    moto: aws.MotoServer,
) -> None:
    # Given four new tasks, one of which its function always reports as failed, and a removal it does not want
    dynamodb = aws.client("dynamodb", moto.url)
    for name in ("a", "bad", "c", "d"):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "USER#alice"}, "sk": {"S": f"TASK#{name}"}})
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "USER#alice"}, "sk": {"S": "TASK#a"}})
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        calls.append([record["dynamodb"]["Keys"]["sk"]["S"] for record in records])
        failed = [r["dynamodb"]["SequenceNumber"] for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == "TASK#bad"]
        return {"batchItemFailures": [{"itemIdentifier": number} for number in failed]}

    inserts = (EventPattern.load('{"eventName": ["INSERT"]}'),)
    mapping = StreamMapping("Mapping", "Fn", "TasksTable", 2, RetryPolicy(2), inserts, "CleanupQueue")
    stream_arn = enable_stream(dynamodb, TABLE, "NEW_AND_OLD_IMAGES")
    sqs = aws.client("sqs", moto.url)

    # When the mapping's poller reads the stream
    poller = StreamPoller(
        mapping, fake_function(handler), aws.client("dynamodbstreams", moto.url), stream_arn, sqs, retry_delay=0
    )
    poller.start().drain(timeout=10)
    poller.stop()
    poller.join()

    # Then each batch of two went once; the failing one again from its failed record, 1 + 2 times in all
    assert calls == [["TASK#a", "TASK#bad"], ["TASK#bad"], ["TASK#bad"], ["TASK#c", "TASK#d"]]
    assert poller.dead_letters is not None
    (message,) = sqs.receive_message(QueueUrl=poller.dead_letters.url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert [record["dynamodb"]["Keys"]["sk"]["S"] for record in body["records"]] == ["TASK#bad"]
    assert "BatchItemFailures" in body["reason"]


def test_records_written_after_a_cancelled_transaction_still_arrive(moto: aws.MotoServer) -> None:
    # Given a poller that has read the stream, and then a transaction that DynamoDB cancels
    # (moto restores a copy of its tables then, stream shards included)
    dynamodb = aws.client("dynamodb", moto.url)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "USER#alice"}, "sk": {"S": "TASK#before"}})
    seen: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(record["dynamodb"]["Keys"]["sk"]["S"] for record in event["Records"])
        return {"batchItemFailures": []}

    inserts = (EventPattern.load('{"eventName": ["INSERT"]}'),)
    mapping = StreamMapping("Mapping", "Fn", "TasksTable", 10, RetryPolicy(0), inserts, None)
    stream_arn = enable_stream(dynamodb, TABLE, "NEW_AND_OLD_IMAGES")
    poller = StreamPoller(mapping, fake_function(handler), aws.client("dynamodbstreams", moto.url), stream_arn, None)
    poller.start().drain(timeout=10)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {"pk": {"S": "USER#alice"}, "sk": {"S": "TASK#before"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )

    # When a record is written after it
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "USER#alice"}, "sk": {"S": "TASK#after"}})
    poller.drain(timeout=10)
    poller.stop()
    poller.join()

    # Then it reaches the function too
    assert seen == ["TASK#before", "TASK#after"]
