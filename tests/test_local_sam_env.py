"""env.json: `sam local invoke / start-api --env-vars env.json` runs every function against DynamoDB Local.

Each function's environment is resolved by SAM CLI's own code (from the tool venv), from template.yaml
plus env.json, exactly as `sam local` would hand it to the function's container.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.config import CrudSettings, ExportSettings, PublisherSettings, Settings

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "env.json"
SAM_PYTHON = Path(os.environ.get("SAM_BIN", ROOT / ".tools" / "sam" / "bin" / "sam")).parent / "python"
DYNAMODB_LOCAL_FROM_A_CONTAINER = "http://host.docker.internal:8000"
SETTINGS = {
    "TasksFunction": CrudSettings,
    "ExportFunction": ExportSettings,
    "UploadEventsFunction": Settings,
    "TaskCleanupFunction": Settings,
    "CursorKeyRotationFunction": Settings,
    "EventPublisherFunction": PublisherSettings,
}

RESOLVE_WITH_SAM_CLI = """
import json, sys
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

template, env_file = sys.argv[1:]
stacks, _ = SamLocalStackProvider.get_stacks(template)
functions = SamFunctionProvider(stacks)
with open(env_file) as handle:
    runner = LocalLambdaRunner(None, functions, ".", ".", env_vars_values=json.load(handle))
print(json.dumps({f.name: runner._make_env_vars(f).resolve() for f in functions.get_all()}))
"""


def sam_local_environments(env_file: Path) -> dict[str, dict[str, str]]:
    if not SAM_PYTHON.exists():
        pytest.fail(f"{SAM_PYTHON} is missing: `make tools` installs SAM CLI")
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent), "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", RESOLVE_WITH_SAM_CLI, str(ROOT / "template.yaml"), str(env_file)],
        cwd=ROOT,
        env=clean,  # no shell variable may stand in for what env.json must provide
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    environments: dict[str, dict[str, str]] = json.loads(result.stdout)
    return environments


@pytest.fixture(scope="module")
def environments() -> dict[str, dict[str, str]]:
    return sam_local_environments(ENV_FILE)


def test_every_function_gets_each_env_json_value(environments: dict[str, dict[str, str]]) -> None:
    overrides: dict[str, Any] = json.loads(ENV_FILE.read_text())["Parameters"]

    assert set(environments) == set(SETTINGS)
    for function, environment in environments.items():
        applied = {name: environment.get(name) for name in overrides}
        assert applied == overrides, f"{function}: SAM CLI only overrides variables the template declares"
        assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == DYNAMODB_LOCAL_FROM_A_CONTAINER


def test_every_function_reads_its_settings_from_that_environment(environments: dict[str, dict[str, str]]) -> None:
    for function, environment in environments.items():
        settings = SETTINGS[function].from_environment(environment)

        assert (settings.table_name, settings.bucket_name) == (
            "serverless-tasks-local",
            "serverless-tasks-local-attachments",
        )


def test_without_env_json_the_functions_would_not_reach_dynamodb_local(tmp_path: Path) -> None:
    empty = tmp_path / "env.json"
    empty.write_text("{}")

    environments = sam_local_environments(empty)

    assert {environment["AWS_ENDPOINT_URL_DYNAMODB"] for environment in environments.values()} == {""}
    assert {environment["TABLE_NAME"] for environment in environments.values()} == {"TasksTable"}


RESOLVE_ARCHITECTURES_WITH_SAM_CLI = """
import json, sys
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

template, overrides = sys.argv[1], json.loads(sys.argv[2])
stacks, _ = SamLocalStackProvider.get_stacks(template, parameter_overrides=overrides)
functions = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True).get_all()
print(json.dumps({f.name: {"architectures": f.architectures, "layers": [l.arn for l in f.layers]} for f in functions}))
"""


@pytest.mark.parametrize(
    ("overrides", "architecture", "layer"),
    [
        ({}, "arm64", "LambdaAdapterLayerArm64"),
        ({"Architecture": "arm64"}, "arm64", "LambdaAdapterLayerArm64"),
        ({"Architecture": "x86_64"}, "x86_64", "LambdaAdapterLayerX86"),
    ],
)
def test_sam_local_runs_every_function_on_the_architecture_parameter_with_its_web_adapter_layer(
    overrides: dict[str, str], architecture: str, layer: str
) -> None:
    """`sam local ... --parameter-overrides Architecture=x86_64` (x86_64 machines) as SAM CLI resolves it."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(ROOT), "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", RESOLVE_ARCHITECTURES_WITH_SAM_CLI, str(ROOT / "template.yaml"), json.dumps(overrides)],
        cwd=ROOT,
        env={**clean, "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    functions = json.loads(result.stdout)

    assert set(functions) == set(SETTINGS)
    assert {name: function["architectures"] for name, function in functions.items()} == {
        name: [architecture] for name in SETTINGS
    }
    assert functions["ExportFunction"]["layers"] == [f"arn:aws:lambda:us-east-1:753240598075:layer:{layer}:30"]
