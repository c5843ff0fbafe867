"""The AWS stand-in authorizes each request with the caller's role, as AWS would (local/iam_gate.py)."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from local import aws
from local.aws import MotoServer
from local.iam_gate import IamGate
from local.roles import Role, access_key_id, roles
from local.server import HttpServer
from local.template import Template

TABLE, BUCKET = "gate-tasks", "gate-attachments"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"
OBJECTS = f"arn:aws:s3:::{BUCKET}/attachments/*"


def role(function: str, *statements: dict[str, Any]) -> Role:
    return Role(function, ({"Version": "2012-10-17", "Statement": list(statements)},), ())


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@pytest.fixture
def stand_in(moto_server: MotoServer) -> Iterator[tuple[MotoServer, IamGate]]:
    template = Template.load(resource_names={"TasksTable": TABLE, "AttachmentsBucket": BUCKET})
    aws.create_table(aws.client("dynamodb", moto_server.url), template, TABLE)
    aws.create_bucket(aws.client("s3", moto_server.url), template, BUCKET)
    gate = IamGate(roles(template), admin_keys=[aws.LOCAL_ACCESS_KEY_ID])
    moto_server.gates.append(gate)
    yield moto_server, gate


def as_function(server: MotoServer, service: str, function: str) -> Any:
    return aws.client(service, server.url, access_key_id=access_key_id(function))


def denied(call: Any, code: str = "AccessDeniedException") -> str:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == code, raised.value.response
    return str(raised.value.response["Error"].get("Message", ""))


def key(task: str = "t1") -> dict[str, Any]:
    return {"pk": {"S": "USER#u1"}, "sk": {"S": f"TASK#{task}"}}


# --- DynamoDB -----------------------------------------------------------------------------------------


def test_each_function_gets_what_its_role_allows_and_nothing_else(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    tasks = as_function(server, "dynamodb", "TasksFunction")
    tasks.put_item(TableName=TABLE, Item={**key(), "title": {"S": "x"}})
    assert tasks.get_item(TableName=TABLE, Key=key())["Item"]["title"] == {"S": "x"}
    message = denied(lambda: as_function(server, "dynamodb", "ExportFunction").get_item(TableName=TABLE, Key=key()))
    assert "ExportFunction" in message and "dynamodb:GetItem" in message and TABLE_ARN in message
    denied(lambda: tasks.scan(TableName=TABLE))
    assert ("ExportFunction", "dynamodb:GetItem", TABLE_ARN) in gate.denied
    assert any(use.function == "TasksFunction" and use.action == "dynamodb:PutItem" for use in gate.used)


def test_a_query_on_an_index_needs_the_index_arn(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    gate.roles["TasksFunction"] = role("TasksFunction", allow("dynamodb:Query", TABLE_ARN))
    tasks = as_function(server, "dynamodb", "TasksFunction")
    values = {":pk": {"S": "USER#u1"}}
    tasks.query(TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=values)
    index = aws.table_definition(table_name=TABLE)["GlobalSecondaryIndexes"][0]
    partition = next(k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH")
    message = denied(
        lambda: tasks.query(
            TableName=TABLE,
            IndexName=index["IndexName"],
            KeyConditionExpression=f"{partition} = :pk",
            ExpressionAttributeValues=values,
        )
    )
    assert f"{TABLE_ARN}/index/{index['IndexName']}" in message


def test_transactions_need_each_items_action_and_batches_each_tables(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    gate.roles["TasksFunction"] = role("TasksFunction", allow(["dynamodb:PutItem", "dynamodb:UpdateItem"], TABLE_ARN))
    tasks = as_function(server, "dynamodb", "TasksFunction")
    put = {"Put": {"TableName": TABLE, "Item": {**key("t2"), "title": {"S": "x"}}}}
    tasks.transact_write_items(TransactItems=[put])
    check = {"ConditionCheck": {"TableName": TABLE, "Key": key("t2"), "ConditionExpression": "attribute_exists(pk)"}}
    assert "dynamodb:ConditionCheckItem" in denied(lambda: tasks.transact_write_items(TransactItems=[put, check]))
    batch = {TABLE: [{"DeleteRequest": {"Key": key("t2")}}]}
    assert "dynamodb:BatchWriteItem" in denied(lambda: tasks.batch_write_item(RequestItems=batch))


def test_a_stream_is_read_with_grants_on_the_stream_arn(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    stream = aws.client("dynamodb", server.url).describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    gate.roles["TaskCleanupFunction"] = role("TaskCleanupFunction", allow("dynamodb:*", TABLE_ARN))
    streams = as_function(server, "dynamodbstreams", "TaskCleanupFunction")
    denied(lambda: streams.describe_stream(StreamArn=stream))
    gate.roles["TaskCleanupFunction"] = role(
        "TaskCleanupFunction", allow(["dynamodb:DescribeStream", "dynamodb:GetShardIterator"], f"{TABLE_ARN}/stream/*")
    )
    shard = streams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    message = denied(lambda: streams.get_records(ShardIterator=iterator["ShardIterator"]))
    assert "dynamodb:GetRecords" in message and f"{TABLE_ARN}/stream/" in message


# --- S3 -----------------------------------------------------------------------------------------------


def test_listing_needs_the_bucket_arn_and_a_prefix_the_condition_allows(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, _ = stand_in
    s3 = as_function(server, "s3", "TasksFunction")  # ListBucketVersions with s3:prefix like attachments/*
    s3.list_object_versions(Bucket=BUCKET, Prefix="attachments/u1/t1/a1")
    denied(lambda: s3.list_object_versions(Bucket=BUCKET, Prefix="other/"), "AccessDenied")
    denied(lambda: s3.list_object_versions(Bucket=BUCKET), "AccessDenied")  # no prefix: the key is absent
    denied(lambda: as_function(server, "s3", "UploadEventsFunction").list_objects_v2(Bucket=BUCKET), "AccessDenied")


def test_object_grants_cover_objects_under_their_prefix_only(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    s3 = as_function(server, "s3", "TasksFunction")
    s3.put_object(Bucket=BUCKET, Key="attachments/u1/t1/a1", Body=b"x")
    denied(lambda: s3.put_object(Bucket=BUCKET, Key="elsewhere/a1", Body=b"x"), "AccessDenied")
    gate.roles["TasksFunction"] = role("TasksFunction", allow("s3:GetObject", f"arn:aws:s3:::{BUCKET}"))
    denied(lambda: s3.get_object(Bucket=BUCKET, Key="attachments/u1/t1/a1"), "AccessDenied")  # a bucket grant


def test_deleting_versions_needs_both_delete_actions_for_each(stand_in: tuple[MotoServer, IamGate]) -> None:
    server, gate = stand_in
    version = aws.client("s3", server.url).put_object(Bucket=BUCKET, Key="attachments/k", Body=b"x")["VersionId"]
    gate.roles["TaskCleanupFunction"] = role("TaskCleanupFunction", allow("s3:DeleteObject", OBJECTS))
    s3 = as_function(server, "s3", "TaskCleanupFunction")
    versions = {"Objects": [{"Key": "attachments/k", "VersionId": version}], "Quiet": True}
    denied(lambda: s3.delete_objects(Bucket=BUCKET, Delete=versions), "AccessDenied")
    denied(lambda: s3.delete_object(Bucket=BUCKET, Key="attachments/k", VersionId=version), "AccessDenied")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "attachments/k"}], "Quiet": True})
    # "you must always have the s3:DeleteObject permission" (S3 API reference): the version grant alone fails
    gate.roles["TaskCleanupFunction"] = role("TaskCleanupFunction", allow("s3:DeleteObjectVersion", OBJECTS))
    denied(lambda: s3.delete_objects(Bucket=BUCKET, Delete=versions), "AccessDenied")
    gate.roles["TaskCleanupFunction"] = role(
        "TaskCleanupFunction", allow(["s3:DeleteObject", "s3:DeleteObjectVersion"], OBJECTS)
    )
    s3.delete_objects(Bucket=BUCKET, Delete=versions)


def test_presigned_requests_are_authorized_as_the_function_that_signed_them(
    stand_in: tuple[MotoServer, IamGate],
) -> None:
    server, _ = stand_in
    aws.client("s3", server.url).put_object(Bucket=BUCKET, Key="attachments/a", Body=b"body")
    for function, status in (("TasksFunction", 200), ("ExportFunction", 403)):
        url = as_function(server, "s3", function).generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "attachments/a"}
        )
        assert requests.get(url, timeout=10).status_code == status, function
    for function, status in (("TasksFunction", 204), ("UploadEventsFunction", 403)):
        post = as_function(server, "s3", function).generate_presigned_post(BUCKET, "attachments/b")
        answer = requests.post(post["url"], data=post["fields"], files={"file": b"x"}, timeout=10)
        assert answer.status_code == status, (function, answer.text)
        if status == 403:
            assert "<Code>AccessDenied</Code>" in answer.text


# --- everything else ------------------------------------------------------------------------------------


def test_unknown_keys_and_unmapped_requests_are_denied_and_logged(
    stand_in: tuple[MotoServer, IamGate], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = stand_in
    caplog.set_level(logging.ERROR, "local.iam_gate")
    stranger = aws.client("dynamodb", server.url, access_key_id="someoneelse")
    denied(lambda: stranger.describe_table(TableName=TABLE))
    denied(lambda: as_function(server, "s3", "TasksFunction").create_bucket(Bucket="another"), "AccessDenied")
    denied(lambda: as_function(server, "dynamodb", "TasksFunction").list_tables())
    assert "no IAM mapping" in caplog.text and "unknown key" in caplog.text
    aws.client("s3", server.url).create_bucket(Bucket="another")  # the stand-in's own key passes


def test_another_endpoint_behind_the_gate_is_authorized_alike(stand_in: tuple[MotoServer, IamGate]) -> None:
    """DynamoDB Local sits behind the same gate (local.aws.GatedProxy); here the upstream is the stand-in."""
    server, gate = stand_in
    proxy = HttpServer(aws.GatedProxy(server.url, [gate]), name="gated proxy").start()
    try:
        tasks = aws.client("dynamodb", proxy.url, access_key_id=access_key_id("TasksFunction"))
        tasks.put_item(TableName=TABLE, Item={**key("p1"), "title": {"S": "through the proxy"}})
        export = aws.client("dynamodb", proxy.url, access_key_id=access_key_id("ExportFunction"))
        denied(lambda: export.get_item(TableName=TABLE, Key=key("p1")))
        assert aws.client("dynamodb", proxy.url).get_item(TableName=TABLE, Key=key("p1"))["Item"]
    finally:
        proxy.stop()
    down = HttpServer(aws.GatedProxy(proxy.url, [gate]), name="proxy to nothing").start()
    try:
        unreachable = aws.client("dynamodb", down.url)
        assert denied(lambda: unreachable.describe_table(TableName=TABLE), "InternalServerError")
    finally:
        down.stop()
