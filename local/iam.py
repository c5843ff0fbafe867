"""IAM policy evaluation as AWS documents it, for what this project's policies use.

`evaluate` decides one request (an action on a resource, with its request context) against identity
policies and an optional permissions boundary: an explicit Deny in any of them wins; otherwise the
identity policies must allow it, and so must the boundary when there is one
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
`evaluate_resource_policy` decides a service principal's request against a resource-based policy (a
queue policy). Statements: Effect, Action/NotAction, Resource/NotResource, Principal (resource policies
only) and Condition, with the operators of
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html:
String*, Numeric*, Bool, Arn*, IpAddress/NotIpAddress and Null, the `IfExists` suffix and the
`ForAnyValue:`/`ForAllValues:` set operators. Anything else (policy variables, Date* or Binary
operators, an unknown element) raises `PolicyError`: a policy this module cannot read is never allowed
or denied by guess.

Hand-written: moto's `IAMPolicy` evaluates actions and resources but almost no conditions, and the PyPI
tools for IAM (iam-ape, policyuniverse, parliament, cloudsplaining) summarise or lint policies; none
decides a request with its context.
"""

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

ContextValue = str | list[str]

_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_RESOURCE_POLICY_KEYS = _STATEMENT_KEYS | {"Principal", "NotPrincipal"}


class Decision(enum.Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "implicit deny"
    EXPLICIT_DENY = "explicit deny"


class PolicyError(ValueError):
    """A policy uses what this evaluator does not implement, or is not a valid policy."""


def evaluate(
    action: str,
    resource: str,
    *,
    identity: list[dict[str, Any]],
    boundary: dict[str, Any] | None = None,
    context: Mapping[str, ContextValue] = {},
) -> Decision:
    """The decision for `action` on `resource` by a principal with these identity policies and boundary."""
    lowered = _lower_keys(context)
    identity_effects = {_effect(s, action, resource, lowered) for p in identity for s in _statements(p)}
    boundary_effects = {_effect(s, action, resource, lowered) for s in _statements(boundary)} if boundary else set()
    if "Deny" in identity_effects | boundary_effects:
        return Decision.EXPLICIT_DENY
    if "Allow" in identity_effects and (boundary is None or "Allow" in boundary_effects):
        return Decision.ALLOWED
    return Decision.IMPLICIT_DENY


def evaluate_resource_policy(
    action: str,
    resource: str,
    *,
    policy: dict[str, Any],
    principal: Mapping[str, str],
    context: Mapping[str, ContextValue] = {},
) -> Decision:
    """The decision of a resource-based policy alone for `principal` (e.g. {"Service": "events.amazonaws.com"})."""
    lowered = _lower_keys(context)
    effects = {
        _effect(s, action, resource, lowered, principal=principal) for s in _statements(policy, _RESOURCE_POLICY_KEYS)
    }
    if "Deny" in effects:
        return Decision.EXPLICIT_DENY
    return Decision.ALLOWED if "Allow" in effects else Decision.IMPLICIT_DENY


def matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcard matching: `*` any run of characters (`/` and `:` too), `?` exactly one."""
    return _glob(pattern, case_sensitive).fullmatch(value) is not None


def statements(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document (its Statement may be one statement or a list)."""
    return _statements(policy, _RESOURCE_POLICY_KEYS)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- statements ---------------------------------------------------------------------------------------


def _statements(policy: Mapping[str, Any] | None, allowed_keys: set[str] = _STATEMENT_KEYS) -> list[dict[str, Any]]:
    if not policy:
        return []
    unknown = set(policy) - {"Version", "Id", "Statement"}
    if unknown or "Statement" not in policy:
        raise PolicyError(f"not a policy document (keys {sorted(policy)})")
    found = as_list(policy["Statement"])
    for statement in found:
        if not isinstance(statement, dict) or set(statement) - allowed_keys:
            raise PolicyError(f"statement with elements this evaluator does not read: {statement!r}")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"statement without Effect Allow or Deny: {statement!r}")
        if ("Action" in statement) == ("NotAction" in statement):
            raise PolicyError(f"statement needs exactly one of Action and NotAction: {statement!r}")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise PolicyError(f"statement needs exactly one of Resource and NotResource: {statement!r}")
    return found


def _effect(
    statement: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, ContextValue],
    *,
    principal: Mapping[str, str] | None = None,
) -> str | None:
    """The statement's Effect when it applies to the request, else None."""
    if principal is not None and not _principal_applies(statement, principal):
        return None
    if "Action" in statement:
        acts = any(matches(p, action, case_sensitive=False) for p in as_list(statement["Action"]))
    else:
        acts = not any(matches(p, action, case_sensitive=False) for p in as_list(statement["NotAction"]))
    if not acts:
        return None
    if "Resource" in statement:
        covers = any(matches(_literal(p), resource) for p in as_list(statement["Resource"]))
    else:
        covers = not any(matches(_literal(p), resource) for p in as_list(statement["NotResource"]))
    if not covers or not _conditions_hold(statement.get("Condition") or {}, context):
        return None
    return str(statement["Effect"])


def _principal_applies(statement: Mapping[str, Any], principal: Mapping[str, str]) -> bool:
    if "NotPrincipal" in statement or "Principal" not in statement:
        raise PolicyError(f"resource policy statement needs a Principal: {statement!r}")
    named = statement["Principal"]
    if named == "*" or named == {"AWS": "*"}:
        return True
    if not isinstance(named, Mapping):
        raise PolicyError(f"unreadable Principal: {named!r}")
    return any(value in as_list(named.get(kind, [])) for kind, value in principal.items())


def _literal(value: Any) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"not a string: {value!r}")
    if "${" in value:
        raise PolicyError(f"policy variables are not evaluated here: {value!r}")
    return value


# --- conditions ---------------------------------------------------------------------------------------


def _conditions_hold(block: Mapping[str, Any], context: Mapping[str, ContextValue]) -> bool:
    """Operators AND, keys of one operator AND, values of one key OR (NOR for a negated operator)."""
    return all(
        _condition_holds(operator, key, as_list(values), context.get(key.lower()))
        for operator, keys in block.items()
        for key, values in keys.items()
    )


def _condition_holds(operator: str, key: str, policy_values: list[Any], value: ContextValue | None) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"unknown set operator {qualifier!r} in {operator}")
    if_exists = name.endswith("IfExists") and name != "IfExists"
    base = name.removesuffix("IfExists") if if_exists else name
    if base == "Null":
        if qualifier or if_exists:
            raise PolicyError(f"{operator} is not a valid operator")
        wanted = _boolean(policy_values, operator)
        return (value is None or value == []) == wanted
    test, negated = _operator(base, operator, policy_values)
    present = [] if value is None else as_list(value)
    if qualifier == "ForAllValues":
        return all(test(item) for item in present)  # an absent key or an empty set: true
    if qualifier == "ForAnyValue":
        return any(test(item) for item in present)  # an absent key or an empty set: false
    if value is None:
        return if_exists or negated  # absent: a negated operator holds, others do not, IfExists always
    if isinstance(value, list):
        raise PolicyError(f"{key} has several values: {operator} needs ForAnyValue: or ForAllValues:")
    return test(value)


def _operator(base: str, operator: str, policy_values: list[Any]) -> tuple[Callable[[str], bool], bool]:
    """A test of one context value against the policy's values, and whether the operator is negated."""
    negated = "Not" in base
    positive = base.replace("Not", "", 1) if negated else base
    values = [_literal(v) if not isinstance(v, bool | int | float) else str(v).lower() for v in policy_values]
    match: Callable[[str, str], bool]
    if positive == "StringEquals":
        match = str.__eq__
    elif positive == "StringEqualsIgnoreCase":
        match = lambda p, v: p.casefold() == v.casefold()  # noqa: E731
    elif positive == "StringLike":
        match = lambda p, v: matches(p, v)  # noqa: E731
    elif positive in ("ArnEquals", "ArnLike"):
        match = _arn_matches
    elif positive.startswith("Numeric") and positive in _NUMERIC:
        match = _numeric(_NUMERIC[positive])
    elif positive == "Bool" and not negated:
        match = lambda p, v: p.lower() == v.lower()  # noqa: E731
    elif positive == "IpAddress":
        match = _ip_matches
    else:
        raise PolicyError(f"condition operator {operator} is not evaluated here")
    if negated:
        return (lambda v: not any(match(p, v) for p in values)), True
    return (lambda v: any(match(p, v) for p in values)), False


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "NumericEquals": lambda v, p: v == p,
    "NumericLessThan": lambda v, p: v < p,
    "NumericLessThanEquals": lambda v, p: v <= p,
    "NumericGreaterThan": lambda v, p: v > p,
    "NumericGreaterThanEquals": lambda v, p: v >= p,
}


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def match(policy_value: str, value: str) -> bool:
        try:
            return compare(float(value), float(policy_value))
        except ValueError:
            return False  # not a number: no match

    return match


def _arn_matches(pattern: str, arn: str) -> bool:
    """Each of the six colon-separated parts matched on its own, wildcards within a part."""
    expected, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(expected) != 6 or len(actual) != 6:
        return False
    return all(matches(p, a) for p, a in zip(expected, actual, strict=True))


def _ip_matches(network: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _boolean(policy_values: list[Any], operator: str) -> bool:
    if len(policy_values) != 1 or str(policy_values[0]).lower() not in ("true", "false"):
        raise PolicyError(f"{operator} takes true or false, not {policy_values!r}")
    return str(policy_values[0]).lower() == "true"


def _lower_keys(context: Mapping[str, ContextValue]) -> dict[str, ContextValue]:
    """Condition keys are case-insensitive; their values are not."""
    return {key.lower(): value for key, value in context.items()}


@lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE)


def allowed_actions(policies: Iterable[Mapping[str, Any]]) -> list[str]:
    """The Action patterns of every Allow statement of these policies (NotAction raises PolicyError)."""
    found = []
    for policy in policies:
        for statement in _statements(policy, _RESOURCE_POLICY_KEYS):
            if statement["Effect"] == "Allow":
                if "NotAction" in statement:
                    raise PolicyError(f"an Allow with NotAction grants unlisted actions: {statement!r}")
                found.extend(as_list(statement["Action"]))
    return found
