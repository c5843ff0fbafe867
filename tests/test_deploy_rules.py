"""Prod and staging do not ship local defaults: the transformed template's parameter constraints and
`Rules`, evaluated as CloudFormation does before it changes any resource.

CloudFormation checks each parameter (AllowedValues; AllowedPattern, which must match the whole value,
or each value of a CommaDelimitedList), then every rule whose RuleCondition holds, and refuses the
deployment with each failed assertion's AssertDescription
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/rules-section-structure.html,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-rules.html).
The evaluator below implements the rule functions the template uses; any other fails the test.
"""

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.roles import transformed

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
URL_PARAMETERS = ("CorsAllowedOrigins", "AuthCallbackUrls", "AuthLogoutUrls")
DEPLOYED = {
    "CorsAllowedOrigins": "https://tasks.example.com,https://admin.example.com:8443",
    "AuthCallbackUrls": "https://tasks.example.com/callback",
    "AuthLogoutUrls": "https://tasks.example.com/",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return transformed(TEMPLATE)


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str | list[str]]:
    values: dict[str, str | list[str]] = {}
    for name, spec in template["Parameters"].items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is not None:
            values[name] = str(raw).split(",") if spec["Type"] == "CommaDelimitedList" else str(raw)
    return values


def rule_value(expression: Any, values: dict[str, str | list[str]]) -> Any:
    if isinstance(expression, str):
        return expression
    if isinstance(expression, list):
        return [rule_value(item, values) for item in expression]
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    arguments = rule_value(argument, values)
    if function == "Fn::Equals":
        return arguments[0] == arguments[1]
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::And":
        return all(arguments)
    if function == "Fn::Or":
        return any(arguments)
    if function == "Fn::Contains":
        return arguments[1] in arguments[0]
    if function == "Fn::EachMemberEquals":
        return all(member == arguments[1] for member in arguments[0])
    if function == "Fn::EachMemberIn":
        return all(member in arguments[1] for member in arguments[0])
    raise AssertionError(f"{function} is not a rule function this evaluator knows")


def deploy_errors(template: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """What CloudFormation answers a deployment with these parameter values: [] when it goes ahead."""
    errors = []
    values = parameter_values(template, overrides)
    for name, spec in template["Parameters"].items():
        if name not in values:
            errors.append(f"Parameters: [{name}] must have values")
            continue
        value = values[name]
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            errors.append(f"Parameter '{name}' must be one of AllowedValues")
        members = value if isinstance(value, list) else [value]
        if "AllowedPattern" in spec and not all(re.fullmatch(spec["AllowedPattern"], m) for m in members):
            errors.append(f"Parameter '{name}' failed to satisfy constraint: {spec.get('ConstraintDescription')}")
    if errors:
        return errors  # the rules run only on valid parameters
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not rule_value(rule["RuleCondition"], values):
            continue
        errors += [a["AssertDescription"] for a in rule["Assertions"] if not rule_value(a["Assert"], values)]
    return errors


def named(errors: list[str]) -> set[str]:
    """The parameters the errors name."""
    return {name for name in URL_PARAMETERS for error in errors if error.startswith(name) or f"'{name}'" in error}


def test_dev_deploys_with_the_local_defaults(template: dict[str, Any]) -> None:
    assert deploy_errors(template, {"StageName": "dev"}) == []


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_prod_and_staging_refuse_the_local_defaults_and_name_each_parameter(
    template: dict[str, Any], stage: str
) -> None:
    errors = deploy_errors(template, {"StageName": stage})
    assert len(errors) == 3
    assert named(errors) == set(URL_PARAMETERS)
    assert all(error.startswith(URL_PARAMETERS) for error in errors)


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_prod_and_staging_deploy_with_their_own_https_urls(template: dict[str, Any], stage: str) -> None:
    assert deploy_errors(template, {"StageName": stage, **DEPLOYED}) == []
    one_local = {**DEPLOYED, "AuthLogoutUrls": "https://tasks.example.com/,http://localhost:5173/"}
    assert named(deploy_errors(template, {"StageName": stage, **one_local})) == {"AuthLogoutUrls"}


def test_with_an_external_issuer_the_sign_in_urls_are_not_used_and_not_checked(template: dict[str, Any]) -> None:
    external = {"JwtIssuer": "https://issuer.example.com/", "JwtAudience": "tasks-api"}
    overrides = {"StageName": "prod", "CorsAllowedOrigins": DEPLOYED["CorsAllowedOrigins"], **external}
    assert deploy_errors(template, overrides) == []
    assert named(deploy_errors(template, {"StageName": "prod", **external})) == {"CorsAllowedOrigins"}


# --- any URL: what a stage accepts ---------------------------------------------------------------------

HOST_EXAMPLES = (
    "localhost",
    "LOCALHOST",
    "app.localhost",
    "localhost.example.com",
    "127.0.0.1",
    "0.0.0.0",  # noqa: S104 (a URL's host, not a socket bound here)
    "[::1]",
    "10.0.0.7",
    "2130706433",
    "0x7f000001",
    "example.com",
    "tasks.example.co.uk",
    "xn--bcher-kva.example",
)
HOSTS = st.one_of(
    st.sampled_from(HOST_EXAMPLES),
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True), min_size=1, max_size=3).map(".".join),
)
URLS = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["https", "http", "HTTPS", "ftp"]),
    HOSTS,
    st.sampled_from(["", ":443", ":5173", ":8443"]),
    st.sampled_from(["", "/", "/callback", "/a/b?x=1", "/#frag", " /x"]),
)
LOCAL_DEFAULTS = {"CorsAllowedOrigins": "http://localhost:5173", "AuthCallbackUrls": "http://localhost:5173/callback",
                  "AuthLogoutUrls": "http://localhost:5173/"}  # fmt: skip


def deployable(url: str, parameter: str) -> bool:
    """What a deployed front end's URL is: https, on a DNS name (not an IP address, not localhost or a
    *.localhost name, which browsers send to this machine), and an origin is only scheme, host and port."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if re.search(r":\d+$", parts.netloc) else parts.netloc
    labels = host.split(".")
    dns_name = bool(re.fullmatch(r"[a-z0-9.-]+", host)) and all(labels) and labels[-1][0].isalpha()
    local = labels[-1] == "localhost"
    shape = parts.path == "" and not parts.query if parameter == "CorsAllowedOrigins" else " " not in url
    return (
        parts.scheme == "https" and url.startswith("https://") and dns_name and not local and shape and "#" not in url
    )


@given(
    stage=st.sampled_from(["dev", "staging", "prod"]),
    parameter=st.sampled_from(URL_PARAMETERS),
    urls=st.lists(st.one_of(URLS, st.sampled_from(list(LOCAL_DEFAULTS.values()))), min_size=1, max_size=3),
)
def test_a_stage_accepts_a_url_exactly_when_it_is_deployable_or_dev_and_the_local_one(
    template: dict[str, Any], stage: str, parameter: str, urls: list[str]
) -> None:
    overrides = {"StageName": stage, **DEPLOYED, parameter: ",".join(urls)}
    accepted = parameter not in named(deploy_errors(template, overrides))
    assert accepted == all(
        deployable(url, parameter) or (stage == "dev" and url == LOCAL_DEFAULTS[parameter]) for url in urls
    ), deploy_errors(template, overrides)


# --- samconfig.toml --------------------------------------------------------------------------------------


def samconfig_overrides() -> dict[str, dict[str, str]]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    sections = {}
    for name, section in config.items():
        if isinstance(section, dict):
            text = section.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
            sections[name] = dict(pair.split("=", 1) for pair in shlex.split(text))
    return sections


def test_samconfig_gives_prod_and_staging_no_local_value(template: dict[str, Any]) -> None:
    deployed = {name: o for name, o in samconfig_overrides().items() if o.get("StageName") in ("prod", "staging")}
    assert "prod" in deployed
    for name, overrides in deployed.items():
        for parameter, value in overrides.items():
            assert "localhost" not in value and "http://" not in value and "127.0.0.1" not in value, (name, parameter)
        # Until the stage's own URLs are set, the deployment stops with the rules' messages, and only those.
        errors = deploy_errors(template, overrides)
        assert all(error.startswith(URL_PARAMETERS) for error in errors), (name, errors)
