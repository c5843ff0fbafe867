"""template.yaml as the local stack reads it: the intrinsics it uses, and every table and bucket by logical id."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from local import specs
from local.stack import LocalStack
from local.template import Template, TemplateError, load_yaml


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))  # template order decides the first table
    return path


def test_every_intrinsic_of_the_real_template_resolves_where_the_stack_reads_it() -> None:
    template = Template.load(resource_names={"TasksTable": "t", "AttachmentsBucket": "b"})

    functions = specs.functions(template)

    assert functions["TasksFunction"].environment["TABLE_NAME"] == "t"
    assert functions["UploadEventsFunction"].environment["BUCKET_NAME"] == "b"
    assert {api.stage for api in specs.http_apis(template).values()} == {"dev"}
    assert [rule.pattern["detail"]["bucket"]["name"] for rule in specs.event_rules(template)] == [["b"]]


@pytest.mark.parametrize("function", ["Fn::Join", "Fn::Select", "Fn::FindInMap", "Fn::Base64"])
def test_an_intrinsic_the_template_does_not_use_is_refused_with_its_place(function: str) -> None:
    document = load_yaml()
    variables = document["Resources"]["TasksFunction"]["Properties"]["Environment"]["Variables"]
    variables["EXTRA"] = {function: ["-", ["a", "b"]]}

    with pytest.raises(TemplateError) as raised:
        specs.function(Template(document), "TasksFunction")

    assert function in str(raised.value)
    assert "TasksFunction.Properties.Environment.Variables.EXTRA" in str(raised.value)


def test_every_table_and_bucket_gets_a_local_name_that_its_refs_resolve_to(tmp_path: Path) -> None:
    document = load_yaml()
    document["Resources"]["IdempotencyTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        },
    }
    variables = document["Resources"]["TasksFunction"]["Properties"]["Environment"]["Variables"]
    variables["IDEMPOTENCY_TABLE"] = {"Ref": "IdempotencyTable"}

    stack = LocalStack(template_path=write(tmp_path, document), table_name="tasks", bucket_name="files")

    assert stack.tables == {"TasksTable": "tasks", "IdempotencyTable": "tasks-idempotencytable"}
    assert stack.buckets == {"AttachmentsBucket": "files"}
    environment = specs.function(stack.template, "TasksFunction").environment
    assert (environment["TABLE_NAME"], environment["IDEMPOTENCY_TABLE"]) == ("tasks", "tasks-idempotencytable")
