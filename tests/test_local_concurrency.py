"""The `make run` stack serves overlapping requests at once, in worker processes it never leaves behind."""

import os
import select
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.stack import StackProcess
from tests.local_support import start_dynamodb_local, start_stack_process

pytestmark = pytest.mark.e2e
WORKER_MAIN = "local/worker_main.py"


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    state: Path = tmp_path_factory.mktemp("stack")
    if request.param == "moto":
        process = start_stack_process(state_dir=state)
        yield process
        assert process.stop() == 0
        return
    dynamodb = start_dynamodb_local()
    try:
        process = start_stack_process(dynamodb_endpoint=dynamodb.endpoint, table_name="workers-e2e", state_dir=state)
        yield process
        assert process.stop() == 0
    finally:
        dynamodb.stop()


def workers_of(pid: int) -> set[int]:
    """The worker processes (local/worker_main.py) whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and any(part.endswith(WORKER_MAIN.encode()) for part in command):
            found.add(int(entry.name))
    return found


def exited(pid: int) -> bool:
    """Whether process `pid` is gone: waits on its pidfd (no polling), at most 10 s."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([descriptor], [], [], 10)
        return bool(readable)
    finally:
        os.close(descriptor)


def test_twelve_writers_on_one_version_exactly_one_wins(stack: StackProcess) -> None:
    if stack.info["dynamodb_endpoint"] == stack.info["aws_endpoint"]:
        pytest.skip("moto applies concurrent writes without isolation; races run on DynamoDB Local")
    headers = stack.issuer().bearer("racer")
    api = stack.info["api_url"]
    created = requests.post(f"{api}/tasks", json={"title": "race"}, headers=headers, timeout=30)
    assert created.status_code == 201
    path, etag = f"{api}/tasks/{created.json()['taskId']}", created.headers["ETag"]
    start = threading.Barrier(12)
    statuses: list[int] = []

    def write(n: int) -> None:
        start.wait()
        conditional = {**headers, "If-Match": etag}
        response = requests.patch(path, json={"title": f"writer {n}"}, headers=conditional, timeout=60)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [412] * 11
    final = requests.get(path, headers=headers, timeout=30).json()
    assert final["version"] == 2 and final["title"].startswith("writer ")
    assert len(workers_of(stack.info["pid"])) > 1, "the writers were served by more than one execution environment"


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_stopping_the_stack_leaves_no_worker_process(tmp_path: Path, how: signal.Signals) -> None:
    stack = start_stack_process(state_dir=tmp_path)
    try:
        headers = stack.issuer().bearer("alice")
        assert requests.get(f"{stack.info['api_url']}/tasks", headers=headers, timeout=30).status_code == 200
        workers = workers_of(stack.info["pid"])
        assert workers, "the request started a worker"
        if stack.process is not None:
            stack.process.send_signal(how)
            stack.process.wait(timeout=30)
    finally:
        stack.stop()

    assert all(exited(pid) for pid in workers)
