"""A deployed stack's outputs, found from a deployment environment name (`make ... ENV=dev`).

ENV names a samconfig.toml section; `dev` is the `[default]` one (what a bare `sam deploy` uses).
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMCONFIG = ROOT / "samconfig.toml"
ENV_ALIASES = {"dev": "default"}
REQUIRED_OUTPUTS = ("ApiUrl", "TasksFunctionUrl", "ExportFunctionUrl", "StageName")
POOL_OUTPUTS = ("UserPoolId", "UserPoolClientId")


class StackError(Exception):
    """The stack, or an output the caller needs, cannot be found."""


@dataclass(frozen=True)
class StackRef:
    name: str
    region: str


def stack_for(env: str, samconfig: Path = SAMCONFIG) -> StackRef:
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    section = config.get(ENV_ALIASES.get(env, env))
    if section is None:
        names = sorted({*config} - {"version"} | {alias for alias, target in ENV_ALIASES.items() if target in config})
        raise StackError(f"no deployment environment {env!r} in {samconfig.name} (known: {', '.join(names)})")
    parameters = section.get("global", {}).get("parameters", {})
    try:
        return StackRef(parameters["stack_name"], parameters["region"])
    except KeyError as missing:
        raise StackError(f"[{env}.global.parameters] in {samconfig.name} has no {missing}") from None


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """OutputKey -> OutputValue of a deployed stack (boto3 CloudFormation client)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as error:
        raise StackError(f"stack {stack_name}: {error.response['Error'].get('Message', error)}") from None
    outputs = stacks[0].get("Outputs", [])
    return {output["OutputKey"]: output["OutputValue"] for output in outputs}


def require(outputs: dict[str, str], stack_name: str, *keys: str) -> list[str]:
    missing = [key for key in keys if not outputs.get(key)]
    if missing:
        raise StackError(
            f"stack {stack_name} has no output {', '.join(missing)}"
            + (
                " (it uses an external identity provider: get tokens from it)"
                if set(missing) & set(POOL_OUTPUTS)
                else ""
            )
        )
    return [outputs[key] for key in keys]
