"""The README's `sam local` section, run for real: SAM CLI's `sam build`, `sam local invoke` of every sample
event in the README's order, and `sam local start-api` with tokens, in Docker, against DynamoDB Local and
`make run`'s AWS stand-in (S3) and JWT issuer.

`make test-sam` runs these (marker `sam`) after `tools/sam_docker.sh up` has a Docker daemon and the Lambda
Python 3.13 base image ready; `DOCKER_HOST` says where. Containers reach this machine at the Docker bridge's
address under the name host.docker.internal (`--add-host host.docker.internal:host-gateway`), and resolve
nothing else (`--container-dns 127.0.0.1`).
"""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import aws
from local.samples import README_ORDER, samples
from tests.bad_tokens import bad_tokens
from tests.local_support import DynamoDBLocal, StackProcess, start_dynamodb_local
from tests.support import SAMPLE_RESULTS

pytestmark = pytest.mark.sam

ROOT = Path(__file__).resolve().parents[1]
SAM = os.environ.get("SAM_BIN", str(ROOT / ".tools" / "sam" / "bin" / "sam"))
HOST_NAME = "host.docker.internal"
ARCHITECTURE = "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"
# As the README writes them, for the machine's own architecture.
SAM_LOCAL_FLAGS = [
    "--parameter-overrides",
    f"Architecture={ARCHITECTURE}",
    "--skip-pull-image",  # tools/sam_docker.sh pulled the image, or made its stand-in
    "--add-host",
    f"{HOST_NAME}:host-gateway",
    "--container-dns",
    "127.0.0.1",
]
# What SAM CLI hands the containers: the stand-in's keys, never a real account's.
SAM_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": aws.LOCAL_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": aws.LOCAL_SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": aws.LOCAL_REGION,
    "AWS_REGION": aws.LOCAL_REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "SAM_CLI_TELEMETRY": "0",
}
TIMEOUT = 300  # seconds any one SAM CLI command may take (a first build, a first image)


@pytest.fixture(scope="module")
def docker() -> str:
    if not os.environ.get("DOCKER_HOST") and shutil.which("docker") is None:
        pytest.skip("no Docker: `make test-sam` starts it (tools/sam_docker.sh)")
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"Docker is not running: {result.stderr.strip()}")
    return bridge_address()


def bridge_address() -> str:
    """Where containers reach this machine: the default bridge's gateway (172.17.0.1 unless Docker says else)."""
    result = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "172.17.0.1"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of template.yaml for this machine's architecture: the built template."""
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    command = [SAM, "build", "--build-dir", str(build_dir), "--parameter-overrides", f"Architecture={ARCHITECTURE}"]
    result = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT * 2, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir / "template.yaml"


@pytest.fixture(scope="module")
def dynamodb(docker: str) -> Iterator[DynamoDBLocal]:
    """DynamoDB Local, which listens on every address: the containers reach it at the bridge."""
    running = start_dynamodb_local()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(docker: str, dynamodb: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """`make run` as the README starts it for `sam local`: the table in DynamoDB Local, the issuer named
    http://host.docker.internal:<port>, and the issuer and AWS stand-in also on the bridge address."""
    issuer_port = _free_port()
    state_dir = tmp_path_factory.mktemp("state")
    log = (state_dir / "stack.log").open("w")
    extra = [
        "--issuer",
        f"http://{HOST_NAME}:{issuer_port}",
        "--port-issuer",
        str(issuer_port),
        "--also-listen",
        docker,
        "--state-dir",
        str(state_dir),
    ]
    process = StackProcess(dynamodb_endpoint=dynamodb.endpoint, extra_args=extra, log=log)
    process.start(timeout=120)
    yield process
    process.stop()
    log.close()


@pytest.fixture(scope="module")
def env_file(stack: StackProcess, dynamodb: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """env.json with this run's ports (the README's has make run's defaults; this machine's are shared)."""
    values: dict[str, str] = json.loads((ROOT / "env.json").read_text())["Parameters"]
    expected = {
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{HOST_NAME}:8000",
        "AWS_ENDPOINT_URL_S3": f"http://{HOST_NAME}:5000",
        "JWT_ISSUER": f"http://{HOST_NAME}:3003",
    }
    assert {name: values[name] for name in expected} == expected
    info = stack.info
    values.update(
        AWS_ENDPOINT_URL_DYNAMODB=f"http://{HOST_NAME}:{_port(dynamodb.endpoint)}",
        AWS_ENDPOINT_URL_S3=f"http://{HOST_NAME}:{_port(info['aws_endpoint'])}",
        JWT_ISSUER=info["issuer_url"],
        JWT_AUDIENCE=info["audience"],
    )
    assert (values["TABLE_NAME"], values["BUCKET_NAME"]) == (info["table_name"], info["bucket_name"])
    path = tmp_path_factory.mktemp("env") / "env.json"
    path.write_text(json.dumps({"Parameters": values}))
    return path


def test_every_sample_event_in_the_readme_order(built: Path, stack: StackProcess, env_file: Path) -> None:
    state = Path(stack.command[stack.command.index("--state-dir") + 1]) / "stack.json"
    state.write_text(json.dumps({**stack.info, "pid": stack.process.pid if stack.process else None}))
    loaded = subprocess.run(
        [sys.executable, "-m", "local.samples", "--state-file", str(state)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    sample = samples()

    results: dict[str, Any] = {}
    bodies: dict[str, Any] = {}
    downloaded = b""
    for name, function in README_ORDER:
        answer = _invoke(built, env_file, function, name)
        if "statusCode" in answer:
            results[name] = answer["statusCode"]
            bodies[name] = json.loads(answer["body"]) if answer.get("body") else None
        else:
            results[name] = answer
        if name == "get-attachment" and answer.get("statusCode") == 200:  # before delete-attachment
            downloaded = _from_this_machine("GET", bodies[name]["download"]["url"]).content

    assert results == SAMPLE_RESULTS, bodies
    assert bodies["create-task"]["title"] == "Write the quarterly report"
    listed = [task["taskId"] for task in bodies["list-tasks"]["items"]]
    assert sorted(listed) == sorted([sample.task.taskId, bodies["create-task"]["taskId"]])
    assert bodies["get-task"]["version"] == 1 and bodies["patch-task"]["status"] == "completed"
    assert bodies["replace-task"]["version"] == 3
    grant = bodies["create-attachment"]["upload"]
    assert grant["url"].startswith(f"http://{HOST_NAME}:")  # the local S3, as the containers name it
    assert len(bodies["list-attachments"]["items"]) == 2
    assert bodies["get-attachment"]["status"] == "available"
    assert len(downloaded) == sample.attachment.size and downloaded.startswith(b"%PDF")


def _invoke(built: Path, env_file: Path, function: str, event: str) -> dict[str, Any]:
    command = [SAM, "local", "invoke", function, "-t", str(built), "--env-vars", str(env_file)]
    command += ["-e", str(ROOT / "events" / f"{event}.json"), *SAM_LOCAL_FLAGS]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{event}: no answer\n{result.stderr}"
    answer: dict[str, Any] = json.loads(lines[-1])  # `sam local invoke` exits 0 even when the function fails
    assert "errorMessage" not in answer, (event, answer, result.stderr[-3000:])
    return answer


def test_start_api_serves_every_route_to_its_owner_only(
    built: Path, stack: StackProcess, env_file: Path, tmp_path: Path
) -> None:
    port = _free_port()
    command = [SAM, "local", "start-api", "-t", str(built), "--env-vars", str(env_file), "--port", str(port)]
    command += ["--warm-containers", "LAZY", *SAM_LOCAL_FLAGS]
    log = (tmp_path / "start-api.log").open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, server)
        _exercise_api(f"http://127.0.0.1:{port}", stack)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _exercise_api(api: str, stack: StackProcess) -> None:
    issuer = stack.issuer()
    alice, bob = issuer.bearer("alice"), issuer.bearer("bob")

    created = requests.post(f"{api}/tasks", json={"title": "sam local", "tags": ["demo"]}, headers=alice, timeout=60)
    assert created.status_code == 201, created.text
    task = created.json()
    url = f"{api}/tasks/{task['taskId']}"
    etag = created.headers["etag"]

    assert [t["taskId"] for t in _get(f"{api}/tasks", alice).json()["items"]] == [task["taskId"]]
    assert _get(url, alice).json() == task
    assert requests.get(url, headers={**alice, "if-none-match": etag}, timeout=60).status_code == 304
    patched = requests.patch(
        url,
        data=json.dumps({"status": "in_progress"}),
        headers={**alice, "if-match": etag, "content-type": "application/merge-patch+json"},
        timeout=60,
    )
    assert patched.status_code == 200 and patched.json()["status"] == "in_progress", patched.text
    stale = requests.put(url, json={"title": "stale"}, headers={**alice, "if-match": etag}, timeout=60)
    assert stale.status_code == 412, stale.text
    replaced = requests.put(url, json={"title": "replaced", "priority": "low"}, headers=alice, timeout=60)
    assert replaced.status_code == 200 and replaced.json()["title"] == "replaced", replaced.text

    data = b"hello\n"
    grant = requests.post(
        f"{url}/attachments",
        json={"fileName": "hello.txt", "contentType": "text/plain", "size": len(data)},
        headers=alice,
        timeout=60,
    )
    assert grant.status_code == 201, grant.text
    attachment = grant.json()
    upload = attachment["upload"]
    posted = _from_this_machine("POST", upload["url"], data=upload["fields"], files={"file": ("hello.txt", data)})
    assert posted.status_code in (200, 204), posted.text
    stack.drain_events()  # S3's "Object Created" reached make run's upload-event function
    attachment_url = f"{url}/attachments/{attachment['attachmentId']}"
    assert [a["attachmentId"] for a in _get(f"{url}/attachments", alice).json()["items"]] == [
        attachment["attachmentId"]
    ]
    available = _get(attachment_url, alice).json()
    assert available["status"] == "available", available
    assert _from_this_machine("GET", available["download"]["url"]).content == data

    # bob: none of alice's task, on any route
    assert _get(f"{api}/tasks", bob).json()["items"] == []
    for method, target in [("GET", url), ("PATCH", url), ("PUT", url), ("DELETE", url), ("GET", attachment_url)]:
        answer = requests.request(method, target, json={"title": "x"}, headers=bob, timeout=60)
        assert answer.status_code == 404, (method, target, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"

    # no token, or a bad one: the function itself refuses (start-api skips the JWT authorizer)
    for kind, token in {"none": "", **bad_tokens(issuer, "alice")}.items():
        refused = requests.get(f"{api}/tasks", headers={"authorization": f"Bearer {token}"}, timeout=60)
        assert refused.status_code == 401, (kind, refused.text)

    bad_input = requests.post(
        f"{api}/tasks", data='{"title": ', headers={**alice, "content-type": "application/json"}, timeout=60
    )
    assert bad_input.status_code == 400 and bad_input.headers["content-type"] == "application/problem+json"

    assert requests.delete(attachment_url, headers=alice, timeout=60).status_code == 204
    assert requests.delete(url, headers=alice, timeout=60).status_code == 204
    assert requests.get(url, headers=alice, timeout=60).status_code == 404


def _get(url: str, headers: dict[str, str]) -> requests.Response:
    response = requests.get(url, headers=headers, timeout=60)
    assert response.status_code == 200, (url, response.text)
    return response


def _from_this_machine(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A presigned URL as the function made it (http://host.docker.internal:<port>/...), used from this
    machine as the README does with `curl --connect-to host.docker.internal::127.0.0.1:` (the same Host)."""
    host_and_port = url.split("/")[2]
    assert host_and_port.split(":")[0] == HOST_NAME, url
    local = url.replace(f"//{host_and_port}", f"//127.0.0.1:{host_and_port.split(':')[1]}", 1)
    return requests.request(method, local, headers={"host": host_and_port}, timeout=60, **kwargs)


def _env() -> dict[str, str]:
    keep = ("PATH", "HOME", "DOCKER_HOST", "LANG", "TMPDIR")
    return {**{name: os.environ[name] for name in keep if name in os.environ}, **SAM_ENVIRONMENT}


def _port(url: str) -> str:
    return url.rstrip("/").rsplit(":", 1)[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sam local start-api exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"sam local start-api did not listen on {port} within {timeout} s")
