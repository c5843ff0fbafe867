"""The local stack as `make run` serves it: every entry point, the CLI, DynamoDB Local (over real HTTP)."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests

from local.aws import client
from local.issuer import DEFAULT_ISSUER, LocalIssuer
from local.stack import LocalStack
from tests.bad_tokens import bad_tokens
from tests.local_support import start_dynamodb_local, start_local_stack, start_stack_process

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    """The stack in this process (function scope: it sets the apps' environment until it stops)."""
    running = start_local_stack(tmp_path)
    yield running
    running.stop()


def test_every_entry_point_serves_the_owner_and_refuses_bad_tokens(stack: LocalStack) -> None:
    alice = stack.issuer.bearer("alice")
    created = requests.post(f"{stack.api_url}/tasks", json={"title": "Local"}, headers=alice, timeout=10)
    task_id = created.json()["taskId"]

    through_api = requests.get(f"{stack.api_url}/tasks/{task_id}", headers=alice, timeout=10)
    through_url = requests.get(f"{stack.function_url}/tasks/{task_id}", headers=alice, timeout=10)
    exported = requests.get(f"{stack.export_url}/tasks/export", headers=alice, timeout=10)
    as_bob = requests.get(f"{stack.api_url}/tasks/{task_id}", headers=stack.issuer.bearer("bob"), timeout=10)

    assert created.status_code == 201
    assert through_api.status_code == through_url.status_code == exported.status_code == 200
    assert through_api.json() == through_url.json()
    assert [json.loads(line) for line in exported.text.splitlines()][-1] == {"_end": {"count": 1, "nextCursor": None}}
    assert as_bob.status_code == 404
    for kind, token in bad_tokens(stack.issuer, "alice").items():
        headers = {"authorization": f"Bearer {token}"}
        for url in (f"{stack.api_url}/tasks", f"{stack.function_url}/tasks", f"{stack.export_url}/tasks/export"):
            assert requests.get(url, headers=headers, timeout=10).status_code == 401, (kind, url)


def test_an_upload_makes_the_attachment_available(stack: LocalStack) -> None:
    alice = stack.issuer.bearer("alice")
    task = requests.post(f"{stack.api_url}/tasks", json={"title": "With a file"}, headers=alice, timeout=10).json()
    body = {"fileName": "notes.txt", "contentType": "text/plain", "size": 5}
    attachment = requests.post(
        f"{stack.api_url}/tasks/{task['taskId']}/attachments", json=body, headers=alice, timeout=10
    )
    upload = attachment.json()["upload"]

    too_big = requests.post(upload["url"], data=upload["fields"], files={"file": ("notes.txt", b"hello!")}, timeout=10)
    uploaded = requests.post(upload["url"], data=upload["fields"], files={"file": ("notes.txt", b"hello")}, timeout=10)
    assert stack.events is not None
    stack.events.drain(timeout=10)
    record = requests.get(
        f"{stack.api_url}/tasks/{task['taskId']}/attachments/{attachment.json()['attachmentId']}",
        headers=alice,
        timeout=10,
    ).json()

    assert (too_big.status_code, uploaded.status_code) == (400, 204)
    assert record["status"] == "available"
    assert requests.get(record["download"]["url"], timeout=10).content == b"hello"


def test_make_run_starts_on_free_ports_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    stack = start_stack_process(state_dir=tmp_path)
    try:
        alice = stack.issuer().bearer("alice")
        api, under_stage = stack.info["api_url"], stack.info["api_stage_url"]
        empty = requests.get(f"{api}/tasks", headers=alice, timeout=10)
        task = requests.post(f"{api}/tasks", json={"title": "Upload"}, headers=alice, timeout=10).json()
        body = {"fileName": "a.txt", "contentType": "text/plain", "size": 2}
        attachment = requests.post(f"{api}/tasks/{task['taskId']}/attachments", json=body, headers=alice, timeout=10)
        upload = attachment.json()["upload"]
        requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"hi")}, timeout=10)
        stack.drain_events()
        location = f"{api}/tasks/{task['taskId']}/attachments/{attachment.json()['attachmentId']}"
        record = requests.get(location, headers=alice, timeout=10).json()
        staged = requests.get(location.replace(api, under_stage, 1), headers=alice, timeout=10).json()
    finally:
        code = stack.stop()

    assert under_stage == f"{api}/dev"
    assert empty.status_code == 200 and empty.json() == {"items": [], "nextCursor": None}
    assert staged == record
    assert record["status"] == "available"
    assert code == 0


def test_run_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = ["--port-export", "0", "--port-url", "0", "--port-issuer", "0", "--port-aws", "0"]
        result = subprocess.run(
            [sys.executable, "-m", "local", "run", "--port-api", str(port), *ports, "--state-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr and "--port-api" in result.stderr


def test_token_prints_a_bearer_token_and_nothing_else(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local", "token", "bob", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("LOCAL_JWT_")},
    )
    issuer = LocalIssuer(tmp_path / "jwt-key.pem")
    token = result.stdout.strip()

    claims = jwt.decode(token, issuer.key.public_key(), algorithms=["RS256"], audience=issuer.audience)
    assert result.stdout == token + "\n" and result.stderr == ""
    assert (claims["sub"], claims["iss"]) == ("bob", DEFAULT_ISSUER)


def test_the_table_can_live_in_dynamodb_local(tmp_path: Path) -> None:
    dynamodb = start_dynamodb_local()
    try:
        with start_stack_process(
            dynamodb_endpoint=dynamodb.endpoint, table_name="local-e2e", state_dir=tmp_path
        ) as stack:
            alice = stack.issuer().bearer("alice")
            created = requests.post(
                f"{stack.info['api_url']}/tasks", json={"title": "In DDB Local"}, headers=alice, timeout=10
            )
            listed = requests.get(f"{stack.info['api_url']}/tasks", headers=alice, timeout=10)
        tables = client("dynamodb", dynamodb.endpoint).list_tables()["TableNames"]
    finally:
        dynamodb.stop()

    assert created.status_code == 201
    assert [task["title"] for task in listed.json()["items"]] == ["In DDB Local"]
    assert "local-e2e" in tables


def test_a_stack_for_containers_serves_its_issuer_and_aws_on_a_second_address_under_a_name_only_they_resolve(
    tmp_path: Path,
) -> None:
    """`make run ARGS="--issuer http://host.docker.internal:3003 --also-listen 172.17.0.1"`, with 127.0.0.2
    standing in for Docker's bridge and a name this machine cannot resolve for host.docker.internal."""
    issuer_port = _free_port()
    name = f"http://containers-only.invalid:{issuer_port}"
    stack = start_local_stack(tmp_path, port_issuer=issuer_port, issuer_url=name, also_listen="127.0.0.2")
    try:
        alice = stack.issuer.bearer("alice")
        created = requests.post(f"{stack.api_url}/tasks", json={"title": "t"}, headers=alice, timeout=10)
        through_url = requests.get(f"{stack.function_url}/tasks", headers=alice, timeout=10)
        discovery = requests.get(f"http://127.0.0.2:{issuer_port}/.well-known/openid-configuration", timeout=10)
        aws_port = stack.aws_endpoint.rsplit(":", 1)[1]
        buckets = client("s3", f"http://127.0.0.2:{aws_port}").list_buckets()["Buckets"]
    finally:
        stack.stop()

    assert created.status_code == 201, created.text  # its own authorizer and function never resolve the name
    assert through_url.status_code == 200, through_url.text
    assert discovery.json()["issuer"] == name
    assert discovery.json()["jwks_uri"] == f"{name}/.well-known/jwks.json"
    assert stack.bucket_name in {bucket["Name"] for bucket in buckets}


def test_a_stack_listens_on_loopback_only_unless_told(stack: LocalStack) -> None:
    for url in (stack.issuer_url, stack.aws_endpoint):
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=2).close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
