"""What the template says about domain events (issue 21), checked on template.yaml and its SAM transform."""

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from local.roles import transformed
from local.template import load_yaml

TEMPLATE = load_yaml()
RESOURCES = TEMPLATE["Resources"]


def _properties(name: str) -> dict[str, Any]:
    return dict(RESOURCES[name]["Properties"])


def _stream_record(name: str, sk: str, *, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"pk": {"S": "USER#alice"}, "sk": {"S": sk}}}
    if old is not None:
        change["OldImage"] = old
    if new is not None:
        change["NewImage"] = new
    return {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change}


def _filter(mapping: str) -> EventPattern:
    (pattern,) = _properties(mapping)["FilterCriteria"]["Filters"]
    return EventPattern.load(pattern["Pattern"])


def test_the_stream_carries_both_images() -> None:
    assert _properties("TasksTable")["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_bus_is_named_for_the_stack_and_reaches_the_publisher() -> None:
    assert RESOURCES["EventBus"]["Type"] == "AWS::Events::EventBus"
    assert _properties("EventBus")["Name"] == {"Fn::Sub": "${AWS::StackName}-events"}
    variables = _properties("EventPublisherFunction")["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBus"}


def test_the_archive_keeps_every_event_of_the_bus_for_the_parameters_days() -> None:
    archive = _properties("EventArchive")
    assert archive["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert "EventPattern" not in archive
    assert archive["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert TEMPLATE["Parameters"]["EventArchiveRetentionDays"]["Type"] == "Number"


def test_the_publisher_mapping_retries_from_the_failed_record_then_dead_letters() -> None:
    mapping = _properties("EventPublisherStreamMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10_000
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["EventPublisherDeadLetterQueue", "Arn"]}
    alarm = _properties("EventPublisherDeadLettersAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["EventPublisherDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


@pytest.mark.parametrize(
    ("sk", "published"),
    [
        ("TASK#01J0000000000000000000000T", True),
        ("ATT#01J0000000000000000000000T#01J0000000000000000000000A", True),
        ("IDEMPOTENCY", False),
    ],
)
def test_the_publisher_mapping_passes_task_and_attachment_records_only(sk: str, published: bool) -> None:
    pattern = _filter("EventPublisherStreamMapping")
    for name, old, new in (("INSERT", None, {}), ("MODIFY", {}, {}), ("REMOVE", {}, None)):
        assert pattern.matches_event(_stream_record(name, sk, old=old, new=new)) is published


def test_the_clean_up_mapping_still_sees_removed_tasks_with_attachments_in_both_images_records() -> None:
    pattern = _filter("TaskCleanupStreamMapping")
    task = "TASK#01J0000000000000000000000T"
    removed = _stream_record("REMOVE", task, old={"hasAttachments": {"BOOL": True}, "title": {"S": "t"}}, new=None)
    modified = _stream_record(
        "MODIFY", task, old={"hasAttachments": {"BOOL": True}}, new={"hasAttachments": {"BOOL": True}}
    )
    assert pattern.matches_event(removed)
    assert not pattern.matches_event(modified)


def test_the_publisher_may_put_events_on_its_bus_only() -> None:
    role = transformed()["Resources"]["EventPublisherFunctionRole"]["Properties"]
    statements = [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]
    (put,) = [statement for statement in statements if "events:PutEvents" in json.dumps(statement["Action"])]
    assert put["Action"] in ("events:PutEvents", ["events:PutEvents"])
    assert put["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
