"""Expand the SAM template into plain CloudFormation, offline.

cfn-lint and checkov do not look inside AWS::Serverless::* resources, so the checks run on
what the SAM transform produces. This runs that transform locally: no AWS credentials, no
network (managed policy names are not looked up; the template uses none).

Usage (with the SAM CLI tool venv, which ships samtranslator):
    .tools/sam/bin/python tools/transform_template.py template.yaml build/transformed.json
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# The transform only needs a region and partition for the ARNs it writes.
REGION = "us-east-1"


class _NoManagedPolicies:
    """Stands in for ManagedPolicyLoader, which would call IAM to list AWS managed policies."""

    def load(self) -> dict[str, str]:
        return {}


def _placeholder_code(template: dict[str, Any]) -> None:
    """Point local CodeUri paths at S3, as `sam package` would (the transform rejects local paths)."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            if isinstance(properties.get("CodeUri", ""), str):
                properties["CodeUri"] = "s3://placeholder-bucket/placeholder.zip"


def transform(template_path: Path, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    template = yaml_parse(template_path.read_text(encoding="utf-8"))
    _placeholder_code(template)
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        plugins=[],
        boto_session=boto3.Session(region_name=REGION),
    )
    loader = _NoManagedPolicies()
    # Metadata (the checkov skip lists) is copied onto every resource SAM generates, so a
    # skip written next to a serverless resource applies to what it expands into.
    return translator.translate(
        sam_template=template,
        parameter_values=parameters or {},
        get_managed_policy_map=loader.load,
        passthrough_metadata=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter value"
    )
    args = parser.parse_args(argv)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    try:
        result = transform(args.template, parameters)
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"transform error: {cause.message}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
