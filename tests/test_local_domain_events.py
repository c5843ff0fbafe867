"""The stack's own bus, locally (local/domain_events.py): what a function puts on it is printed as it passes
and reaches the template's rules on that bus, through the same deliveries as S3's upload events."""

import io
import json
from typing import Any

import pytest

from local import aws
from local.aws import MotoServer
from local.domain_events import BusTap
from local.notifications import EventBus
from local.specs import EventRuleSpec, event_rules
from local.template import Template, TemplateError
from tests.local_support import FakeHandler, fake_function

BUS = "serverless-tasks-local-events"


def entry(detail_type: str = "Task Created", bus: str = BUS, **detail: Any) -> dict[str, Any]:
    return {
        "Source": "serverless-tasks",
        "DetailType": detail_type,
        "Detail": json.dumps({"eventId": "t:1", **detail}),
        "EventBusName": bus,
    }


@pytest.fixture
def tapped(moto_server: MotoServer) -> tuple[Any, FakeHandler, BusTap, io.StringIO]:
    """The bus in moto, tapped, with one rule (Task Completed only) whose function records its events."""
    handler, log = FakeHandler({"ok": True}), io.StringIO()
    rule = EventRuleSpec("Fn.Completed", "Fn", {"detail-type": ["Task Completed"]}, bus="EventBus")
    rules = EventBus([rule], {"Fn": fake_function(handler)}, aws.client("sqs", moto_server.url))
    tap = BusTap(BUS, rules, log=log)
    moto_server.observers.append(tap.observe)
    events = aws.client("events", moto_server.url)
    events.create_event_bus(Name=BUS)
    events.create_event_bus(Name="elsewhere")
    return events, handler, tap, log


def test_each_event_on_the_bus_is_printed_kept_and_delivered_to_the_rules_it_matches(tapped: Any) -> None:
    events, handler, tap, log = tapped

    events.put_events(Entries=[entry("Task Created"), entry("Task Completed", taskId="t")])
    tap.drain()

    assert [event["detail-type"] for event in tap.published] == ["Task Created", "Task Completed"]
    assert [event["detail"]["taskId"] for event, _ in handler.calls] == ["t"]
    assert handler.event["source"] == "serverless-tasks" and handler.event["id"]
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("[event bus] Task Created t:1 {")
    assert json.loads(lines[1].removeprefix("[event bus] Task Completed t:1 ")) == {"eventId": "t:1", "taskId": "t"}


def test_events_on_other_buses_are_not_this_bus_s(tapped: Any) -> None:
    events, handler, tap, _ = tapped

    events.put_events(Entries=[entry("Task Completed", bus="elsewhere"), entry("Task Completed", bus="default")])
    tap.drain()

    assert tap.published == [] and handler.calls == []


def test_the_template_rules_say_which_bus_they_are_on() -> None:
    template = Template.load(resource_names={"AttachmentsBucket": "bucket"})
    raw = template.resources["UploadEventsFunction"]["Properties"]["Events"]
    (name,) = raw

    assert all(rule.bus is None for rule in event_rules(template))  # the upload rule: the default bus
    on_bus = {"Type": "EventBridgeRule", "Properties": {**raw[name]["Properties"], "EventBusName": {"Ref": "EventBus"}}}
    template.resources["UploadEventsFunction"]["Properties"]["Events"][name] = on_bus
    assert [rule.bus for rule in event_rules(template)] == ["EventBus"]
    on_bus["Properties"]["EventBusName"] = "by-name"
    with pytest.raises(TemplateError, match="EventBusName"):
        event_rules(template)
