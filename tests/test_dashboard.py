"""The dashboard shows only metrics this stack emits: AWS metrics of its own resources, or the metrics
the code emits with Powertools Metrics (found by reading the code, not listed by hand)."""

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.template import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TEMPLATE = load_yaml(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBAL_ENV: dict[str, str] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:.]+)\}")

# The AWS namespace each resource type publishes to, the metrics of it the dashboard may show
# (from the services' metric documentation), and the dimension naming the resource.
AWS_METRICS: dict[str, tuple[str, str, set[str]]] = {
    "AWS::Serverless::Function": (
        "AWS/Lambda",
        "FunctionName",
        {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions", "Url4xxCount", "Url5xxCount"}
        | {"UrlRequestCount", "UrlRequestLatency", "StreamedOutboundBytes", "StreamedOutboundThroughput"},
    ),
    "AWS::Serverless::HttpApi": (
        "AWS/ApiGateway",
        "ApiId",
        {"Count", "4xx", "5xx", "Latency", "IntegrationLatency", "DataProcessed"},
    ),
    "AWS::DynamoDB::Table": (
        "AWS/DynamoDB",
        "TableName",
        {"ReadThrottleEvents", "WriteThrottleEvents", "ThrottledRequests", "SystemErrors", "UserErrors"}
        | {"ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "SuccessfulRequestLatency"},
    ),
    "AWS::SQS::Queue": ("AWS/SQS", "QueueName", {"ApproximateNumberOfMessagesVisible", "NumberOfMessagesSent"}),
}


def dashboard_metrics() -> list[list[Any]]:
    [dashboard] = [body for body in RESOURCES.values() if body["Type"] == "AWS::CloudWatch::Dashboard"]
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    for name in PLACEHOLDER.findall(body):
        resource = name.split(".")[0]
        assert resource in RESOURCES or name.startswith("AWS::"), f"the dashboard names an unknown {name}"
    document = json.loads(PLACEHOLDER.sub(lambda match: f"<{match.group(1)}>", body))
    return [row for widget in document["widgets"] for row in widget["properties"]["metrics"]]


def dimensions(row: list[Any]) -> dict[str, str]:
    names_and_values = [item for item in row[2:] if isinstance(item, str)]
    return dict(zip(names_and_values[::2], names_and_values[1::2], strict=True))


def referenced_resource(value: str) -> str:
    match = re.fullmatch(r"<([A-Za-z0-9]+)(\.[A-Za-z]+)?>", value)
    assert match, f"{value} names no resource of the stack"
    return match.group(1)


def emitted_metric_names() -> list[re.Pattern[str]]:
    """Every add_metric(name=...) in src/ as a pattern (an f-string's fields match anything)."""
    patterns = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric":
                name = next(keyword.value for keyword in node.keywords if keyword.arg == "name")
                patterns.append(re.compile(_pattern(name)))
    return patterns


def _pattern(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return re.escape(str(node.value))
    assert isinstance(node, ast.JoinedStr), f"metric name {ast.unparse(node)} is neither a string nor an f-string"
    return "".join(re.escape(str(part.value)) if isinstance(part, ast.Constant) else ".+" for part in node.values)


def upload_outcomes() -> set[str]:
    """What `AttachmentService.confirm_upload` returns: the values of the upload handler's Upload-{outcome}."""
    tree = ast.parse((SRC / "core" / "services" / "attachments.py").read_text())
    [function] = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "confirm_upload"
    ]
    return {
        node.value.value
        for node in ast.walk(function)
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
    }


def cold_start_functions() -> set[str]:
    """Functions whose handler module captures the ColdStart metric."""
    found = set()
    for name, body in RESOURCES.items():
        handler = body.get("Properties", {}).get("Handler", "")
        if body["Type"] == "AWS::Serverless::Function" and handler.endswith(".lambda_handler"):
            module = SRC / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
            if "capture_cold_start_metric=True" in module.read_text():
                found.add(name)
    return found


def powertools_rows() -> Iterator[list[Any]]:
    return (row for row in dashboard_metrics() if row[0] == GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"])


@pytest.mark.parametrize("row", dashboard_metrics(), ids=lambda row: f"{row[0]}:{row[1]}")
def test_every_metric_is_one_the_stack_emits(row: list[Any]) -> None:
    namespace, metric, found = row[0], row[1], dimensions(row)
    if namespace == GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"]:
        assert found.pop("service") == GLOBAL_ENV["POWERTOOLS_SERVICE_NAME"]
        if metric == "ColdStart":
            assert referenced_resource(found.pop("function_name")) in cold_start_functions()
        else:
            emitted = any(pattern.fullmatch(metric) for pattern in emitted_metric_names())
            assert emitted, f"the code never emits {metric}"
        assert not found, f"{metric} is emitted without the dimensions {found}"
        return
    resource = referenced_resource(next(iter(found.values())))
    expected_namespace, dimension, metrics = AWS_METRICS[RESOURCES[resource]["Type"]]
    assert (namespace, list(found)) == (expected_namespace, [dimension])
    assert metric in metrics, f"{namespace} has no metric {metric}"


def test_upload_metrics_name_real_outcomes() -> None:
    shown = {row[1].removeprefix("Upload-") for row in powertools_rows() if row[1].startswith("Upload-")}
    assert shown == upload_outcomes()


def test_the_dashboard_shows_what_the_spec_names() -> None:
    shown = {(row[0], row[1]) for row in dashboard_metrics()}
    expected = {
        ("AWS/ApiGateway", "Count"),  # API traffic
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Throttles"),
        (GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"], "ColdStart"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/Lambda", "StreamedOutboundBytes"),  # export volume
    }
    assert expected <= shown
    assert any(row[1].startswith("Upload-") for row in powertools_rows())  # uploads
