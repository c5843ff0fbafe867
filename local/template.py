"""template.yaml as data: the local stack and the tests build what the template declares, nothing hard-coded.

CloudFormation short tags (`!Ref`, `!Sub`, ...) load as their long forms. `Template.resolve` evaluates
what the template itself decides, with the intrinsic functions template.yaml uses: `Ref`, `Fn::Sub`,
`Fn::If`, `Fn::GetAtt`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`; any other is a
`TemplateError` that names it and where it is. A deployed resource (`!Ref Table` with no local name,
`!GetAtt Role.Arn` with no local attribute) resolves to an `Unresolved` marker, which callers drop or
replace with a local value.
"""

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME, REPO_ROOT

DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION = "AWS::Serverless::Function"
_PSEUDO = {"AWS::Region": LOCAL_REGION, "AWS::AccountId": LOCAL_ACCOUNT_ID, "AWS::Partition": "aws"}
_PSEUDO["AWS::URLSuffix"] = "amazonaws.com"
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class TemplateError(Exception):
    """template.yaml does not hold what the local stack needs, or uses what it cannot evaluate."""


class Unresolved:
    """An intrinsic function that only a deployed stack can evaluate (a resource's Ref or attribute)."""

    def __init__(self, expression: Any):
        self.expression = expression

    def __repr__(self) -> str:
        return f"Unresolved({self.expression!r})"


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads CloudFormation's short-form intrinsic function tags."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path} does not exist")
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506 - safe loader subclass
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


class Template:
    """A parsed template plus the parameter values and local resource names it is evaluated with."""

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Mapping[str, str]] | None = None,
    ):
        """`resource_names`: what `!Ref` of a resource gives locally, e.g. {"TasksTable": "tasks-local"};
        `attributes`: what `!GetAtt` gives, e.g. {"TasksTable": {"Arn": "arn:aws:dynamodb:..."}}."""
        self.document = document
        self.resource_names = dict(resource_names or {})
        self.attributes = {name: dict(values) for name, values in (attributes or {}).items()}
        self._overrides = dict(parameters or {})
        self.path: Path | None = None  # the file it was loaded from
        self._conditions: dict[str, bool] = {}

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TEMPLATE, **kwargs: Any) -> "Template":
        template = cls(load_yaml(path), **kwargs)
        template.path = Path(path)
        return template

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.document.get("Resources") or {}

    def logical_ids(self, resource_type: str) -> list[str]:
        """The resources of this type that exist with the parameters given, in template order."""
        return [
            name
            for name, body in self.resources.items()
            if body.get("Type") == resource_type and ("Condition" not in body or self.condition(body["Condition"]))
        ]

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """Parameter values: overrides, else defaults. CommaDelimitedList values are lists."""
        values: dict[str, Any] = {}
        for name, spec in (self.document.get("Parameters") or {}).items():
            raw = self._overrides.get(name, spec.get("Default"))
            if raw is None:
                continue
            value = as_text(raw)
            values[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.document.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"condition {name} is not defined")
            value = self.resolve(conditions[name], f"Conditions.{name}")
            if not isinstance(value, bool):
                raise TemplateError(f"condition {name} does not evaluate to true or false locally: {value!r}")
            self._conditions[name] = value
        return self._conditions[name]

    # -- intrinsic functions

    def resolve(self, value: Any, where: str = "") -> Any:
        """Evaluate the intrinsic functions in `value` (found at `where`, for error messages)."""
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Condition" and isinstance(argument, str):  # (an IAM Condition is a map)
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument, where)
        return {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}

    def _ref(self, name: str) -> Any:
        if name == "AWS::StackName":
            return LOCAL_STACK_NAME
        for names in (_PSEUDO, self.parameters, self.resource_names):
            if name in names:
                return names[name]
        return Unresolved({"Ref": name})

    def _function(self, name: str, argument: Any, where: str) -> Any:
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(str(condition)) else when_false, where)
        if name == "GetAtt":
            return self._attribute(*argument)
        if name == "Sub":
            return self._sub(argument, where)
        if name not in ("Equals", "Not", "And", "Or"):
            raise TemplateError(
                f"{where.lstrip('.')}: Fn::{name} is not resolved locally (template.yaml did not use it)"
            )
        values = [self.resolve(item, where) for item in argument]
        if any(isinstance(item, Unresolved) for item in values):
            return Unresolved({f"Fn::{name}": argument})
        if name == "Equals":
            return as_text(values[0]) == as_text(values[1])
        return not values[0] if name == "Not" else all(values) if name == "And" else any(values)

    def _sub(self, argument: Any, where: str) -> Any:
        text, variables = (
            (argument[0], self.resolve(argument[1], where)) if isinstance(argument, list) else (argument, {})
        )
        values = {}
        for name in _SUB_VARIABLE.findall(str(text)):
            if name.startswith("!"):
                continue
            value = (
                variables[name]
                if name in variables
                else self._ref(name)
                if "." not in name
                else self._attribute(*name.split(".", 1))
            )
            if isinstance(value, Unresolved):
                return Unresolved({"Fn::Sub": argument})
            values[name] = as_text(value)
        return _SUB_VARIABLE.sub(lambda m: values.get(m.group(1), "${" + m.group(1)[1:] + "}"), str(text))

    def _attribute(self, logical_id: str, attribute: str) -> Any:
        value = self.attributes.get(logical_id, {}).get(attribute)
        return Unresolved({"Fn::GetAtt": [logical_id, attribute]}) if value is None else value

    def properties(self, logical_id: str, resource_type: str) -> dict[str, Any]:
        body = self.resources.get(logical_id)
        if body is None or body.get("Type") != resource_type:
            raise TemplateError(f"{logical_id} is not an {resource_type}")
        return dict(self.resolve(body.get("Properties") or {}, f"{logical_id}.Properties"))

    def only(self, resource_type: str, logical_id: str | None) -> str:
        found = [logical_id] if logical_id is not None else self.logical_ids(resource_type)
        if len(found) != 1:
            raise TemplateError(f"expected exactly one {resource_type} in the template, found {found or 'none'}")
        return found[0]

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's Properties with `Globals.Function` merged in, intrinsics not yet resolved."""
        body = self.resources.get(logical_id)
        if body is None or body.get("Type") != FUNCTION:
            raise TemplateError(f"{logical_id} is not an {FUNCTION}")
        return merge((self.document.get("Globals") or {}).get("Function") or {}, body.get("Properties") or {})


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals: the resource's own values win; nested maps (Environment.Variables) are merged."""
    merged = dict(base)
    for key, value in override.items():
        intrinsic = isinstance(value, Mapping) and any(k == "Ref" or k.startswith("Fn::") for k in value)
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not intrinsic:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_text(item) for item in value)
    return str(value)


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def require_resolved(value: Any, what: str) -> None:
    if isinstance(value, Unresolved):
        raise TemplateError(f"{what} depends on a deployed resource: {value.expression!r}")
    for item in value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else ():
        require_resolved(item, what)
