"""A deployed stack's outputs, found from a deployment environment name (`make ... ENV=dev`).

ENV names a samconfig.toml section; `dev` is the `[default]` one (what a bare `sam deploy` uses).
`python -m tools.stack_outputs parameter-overrides ENV` prints that section's parameter overrides, for a
`sam deploy --parameter-overrides` that adds to them (`make ci-deploy`): the option replaces the section's.
"""

import argparse
import sys
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


def _section(env: str, samconfig: Path) -> dict[str, Any]:
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    section: dict[str, Any] | None = config.get(ENV_ALIASES.get(env, env))
    if section is None:
        names = sorted({*config} - {"version"} | {alias for alias, target in ENV_ALIASES.items() if target in config})
        raise StackError(f"no deployment environment {env!r} in {samconfig.name} (known: {', '.join(names)})")
    return section


def stack_for(env: str, samconfig: Path = SAMCONFIG) -> StackRef:
    parameters = _section(env, samconfig).get("global", {}).get("parameters", {})
    try:
        return StackRef(parameters["stack_name"], parameters["region"])
    except KeyError as missing:
        raise StackError(f"[{env}.global.parameters] in {samconfig.name} has no {missing}") from None


def parameter_overrides(env: str, samconfig: Path = SAMCONFIG) -> str:
    """The `parameter_overrides` of the environment's `sam deploy` section, as written there."""
    overrides = _section(env, samconfig).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    return str(overrides)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="samconfig.toml's parameter overrides of a deployment environment")
    parser.add_argument("command", choices=["parameter-overrides"])
    parser.add_argument("env", help="samconfig.toml environment (dev, prod)")
    args = parser.parse_args(argv)
    try:
        print(parameter_overrides(args.env))
    except StackError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
