"""Faults and load end to end on DynamoDB Local: an outage loses no acknowledged write, a short soak no update."""

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.soak import Endpoints, run_soak
from local.dynamodb_local import free_port
from tests.local_support import DynamoDBLocal, StackProcess, start_stack_process

pytestmark = pytest.mark.e2e


@pytest.fixture
def on_disk(tmp_path: Path) -> Iterator[DynamoDBLocal]:
    """DynamoDB Local keeping its data on disk, so it can be stopped and started again with it."""
    server = DynamoDBLocal(free_port(), in_memory=False, db_path=tmp_path / "dynamodb").start()
    yield server
    server.stop()


@pytest.fixture
def stack(on_disk: DynamoDBLocal, tmp_path: Path) -> Iterator[StackProcess]:
    process = start_stack_process(dynamodb_endpoint=on_disk.endpoint, table_name="faults", state_dir=tmp_path / "s")
    yield process
    process.stop()


def test_an_outage_during_a_burst_of_writes_loses_no_acknowledged_write(
    on_disk: DynamoDBLocal, stack: StackProcess
) -> None:
    auth = {"Authorization": f"Bearer {stack.issuer().token(f'outage-{uuid.uuid4()}')}"}
    api = stack.info["api_url"]
    acknowledged: list[str] = []
    refused: list[requests.Response] = []
    others: list[requests.Response] = []
    lock = threading.Lock()
    first_writes, outage_seen, recovered = threading.Event(), threading.Event(), threading.Event()

    def writer(n: int) -> None:
        session = requests.Session()
        while not recovered.is_set():
            response = session.post(api + "/tasks", json={"title": f"burst {n}"}, headers=auth, timeout=30)
            with lock:
                if response.status_code == 201:
                    acknowledged.append(response.json()["taskId"])
                    if len(acknowledged) >= 8:
                        first_writes.set()
                elif response.status_code == 503:
                    refused.append(response)
                    outage_seen.set()
                else:
                    others.append(response)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert first_writes.wait(60), "no write got through before the outage"
        on_disk.stop()  # in the middle of the burst
        assert outage_seen.wait(60), "no request saw the outage"
        on_disk.start()  # same port, same files
        with lock:
            before = len(acknowledged)
        for _ in range(200):  # until writes are acknowledged again (no sleep: each POST is the probe)
            probe = requests.post(api + "/tasks", json={"title": "probe"}, headers=auth, timeout=30)
            if probe.status_code == 201:
                break
        assert probe.status_code == 201, "writes never resumed after the restart"
        acknowledged.append(probe.json()["taskId"])
    finally:
        recovered.set()
        for thread in threads:
            thread.join()

    assert others == [], [f"{response.status_code} {response.text[:200]}" for response in others]
    assert all(response.headers.get("Retry-After") for response in refused)
    assert all(response.headers["Content-Type"] == "application/problem+json" for response in refused)
    for task_id in acknowledged:
        assert requests.get(api + f"/tasks/{task_id}", headers=auth, timeout=30).status_code == 200, task_id
    assert before < len(acknowledged), "the burst's writes before the outage and the probe after it are all there"


def test_a_short_soak_has_no_5xx_and_loses_no_update(stack: StackProcess) -> None:
    info = stack.info
    token = stack.issuer().token(f"soak-{uuid.uuid4()}")
    endpoints = Endpoints(info["api_url"], info["function_url"], info["export_url"], token)

    result = run_soak(endpoints, seconds=8, clients=4)

    print(result.report())
    assert result.statuses[201] > 0 and result.statuses[200] > 0, "writes and reads were acknowledged"
    assert result.increments > 0, "concurrent If-Match increments of the shared counter went through"
    assert result.server_errors == 0, result.report()
    assert result.lost_updates == 0, result.mismatches[:5]
