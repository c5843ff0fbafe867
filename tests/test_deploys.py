"""Safe deploys in the transformed template: versions behind a `live` alias that every entry point
invokes, canaries on prod that roll back on the alarms, SnapStart as a parameter."""

import json
from pathlib import Path
from typing import Any

import pytest

from local.template import load_yaml
from streaming.app import AFTER_RESTORE_PATH
from tests.test_dashboard import emitted_metric_names
from tests.test_template import FUNCTIONS, TEMPLATE, _resources, transform_template

pytestmark = pytest.mark.template

ROLLBACK_ALARMS = {
    "TasksFunction": {"TasksErrorsAlarm", "TasksUnhandledErrorsAlarm", "TasksUrl5xxAlarm"},
    "ExportFunction": {"ExportErrorsAlarm", "ExportUrl5xxAlarm"},
    "UploadEventsFunction": {"UploadEventsErrorsAlarm"},
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output: Path = transform_template(tmp_path_factory.mktemp("transform") / "transformed.json")
    return dict(json.loads(output.read_text(encoding="utf-8")))


def test_every_function_publishes_versions_behind_a_live_alias(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    assert template["Globals"]["Function"]["AutoPublishAlias"] == "live"
    for function in FUNCTIONS:  # a layer bump publishes too
        assert template["Resources"][function]["Properties"]["AutoPublishAliasAllProperties"] is True
    aliases = _resources(transformed, "AWS::Lambda::Alias")
    assert {alias["Properties"]["FunctionName"]["Ref"] for alias in aliases.values()} == set(FUNCTIONS)
    assert {alias["Properties"]["Name"] for alias in aliases.values()} == {"live"}


def test_every_entry_point_invokes_the_alias(transformed: dict[str, Any]) -> None:
    alias = {f"{function}Aliaslive" for function in FUNCTIONS}
    urls = _resources(transformed, "AWS::Lambda::Url").values()
    assert {url["Properties"]["TargetFunctionArn"]["Ref"] for url in urls} <= alias
    permissions = _resources(transformed, "AWS::Lambda::Permission").values()
    assert permissions and {p["Properties"]["FunctionName"]["Ref"] for p in permissions} <= alias
    integrations = [
        operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        for api in _resources(transformed, "AWS::ApiGatewayV2::Api").values()
        for path in api["Properties"]["Body"]["paths"].values()
        for operation in path.values()
        if "x-amazon-apigateway-integration" in operation
    ]
    assert integrations and all("${TasksFunctionAliaslive}" in uri for uri in integrations)
    targets = [
        target
        for rule in _resources(transformed, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
    ]
    assert targets and {target["Arn"]["Ref"] for target in targets} <= alias


def test_prod_deploys_are_canaries_that_roll_back_on_the_alarms(transformed: dict[str, Any]) -> None:
    groups = _resources(transformed, "AWS::CodeDeploy::DeploymentGroup")
    assert set(groups) == {f"{function}DeploymentGroup" for function in FUNCTIONS}
    for function, alarms in ROLLBACK_ALARMS.items():
        properties = groups[f"{function}DeploymentGroup"]["Properties"]
        condition, prod, other = properties["DeploymentConfigName"]["Fn::If"]
        assert condition == "IsProd"
        assert prod["Fn::Sub"][1]["ConfigName"] == "Canary10Percent5Minutes"
        assert other["Fn::Sub"][1]["ConfigName"] == "AllAtOnce"
        assert properties["AlarmConfiguration"]["Enabled"] is True
        assert {alarm["Name"]["Ref"] for alarm in properties["AlarmConfiguration"]["Alarms"]} == alarms
        assert "DEPLOYMENT_STOP_ON_ALARM" in properties["AutoRollbackConfiguration"]["Events"]
        alias = transformed["Resources"][f"{function}Aliaslive"]
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {
            "Ref": f"{function}DeploymentGroup"
        }


def test_snapstart_is_a_parameter_off_by_default(template: dict[str, Any], transformed: dict[str, Any]) -> None:
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "Disabled" and set(parameter["AllowedValues"]) == {"Enabled", "Disabled"}
    assert transformed["Conditions"]["SnapStartEnabled"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "Enabled"]}
    for function in FUNCTIONS:
        snap_start = transformed["Resources"][function]["Properties"]["SnapStart"]
        assert snap_start == {"ApplyOn": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]}}


def test_the_export_app_has_the_web_adapter_after_restore_hook(template: dict[str, Any]) -> None:
    variables = template["Resources"]["ExportFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"] == AFTER_RESTORE_PATH
    (layer,) = template["Resources"]["ExportFunction"]["Properties"]["Layers"]
    assert layer["Fn::Sub"][0].endswith(":layer:${LayerName}:30")  # adapter 1.1.0: the first with hooks


def test_the_rollback_alarm_on_answered_500s_watches_a_metric_the_code_emits(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["TasksUnhandledErrorsAlarm"]["Properties"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}]
    assert any(pattern.fullmatch(alarm["MetricName"]) for pattern in emitted_metric_names())
