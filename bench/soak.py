"""Soak: concurrent clients mixing every route against the local stack on DynamoDB Local, for a while.

    make soak                      # 8 clients for 60 s
    make soak SECONDS=300 CLIENTS=16

It prints requests per second, p50/p99 latency, the 5xx count and lost updates, and asserts nothing
(the short run in the test suite asserts). Each client owns its tasks and keeps what every acknowledged
response says they are; at the end the stack must hold exactly that. All clients also increment one
shared task with If-Match (read, add one, write; a 412 means read again): its final count must equal the
increments that were acknowledged, or an update was lost.
"""

import argparse
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


@dataclass
class Endpoints:
    api_url: str
    function_url: str
    export_url: str
    token: str  # every client acts as this one user, so the shared task is theirs too


@dataclass
class SoakResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lost_updates: int = 0
    increments: int = 0  # acknowledged If-Match increments of the shared counter
    mismatches: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def report(self) -> str:
        latencies = sorted(self.latencies) or [0.0]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return (
            f"requests {self.requests} in {self.seconds:.1f} s = {self.requests / self.seconds:.1f}/s; "
            f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
            f"5xx {self.server_errors}; lost updates {self.lost_updates}; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


class _Client:
    def __init__(self, endpoints: Endpoints, result: SoakResult, lock: threading.Lock, seed: int):
        self.endpoints = endpoints
        self.result = result
        self.lock = lock
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {endpoints.token}"
        self.tasks: dict[str, dict[str, Any] | None] = {}  # what acknowledged responses say (None: deleted)
        self.increments = 0

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        response = self.session.request(method, url, timeout=30, **kwargs)
        with self.lock:
            self.result.latencies.append(time.perf_counter() - started)
            self.result.statuses[response.status_code] += 1
        return response

    def base(self) -> str:
        return self.random.choice((self.endpoints.api_url, self.endpoints.function_url))

    def step(self, shared_id: str) -> None:
        live = [task_id for task_id, task in self.tasks.items() if task is not None]
        action = self.random.choice(
            ["create", "create", "get", "patch", "put", "list", "delete", "export", "attach", "increment", "increment"]
        )
        if action == "create" or not live:
            body = {"title": f"soak {uuid.uuid4().hex[:8]}", "priority": self.random.choice(["low", "high"])}
            response = self.call("POST", self.base() + "/tasks", json=body)
            if response.status_code == 201:
                self.tasks[response.json()["taskId"]] = response.json()
            return
        task_id = self.random.choice(live)
        path = f"/tasks/{task_id}"
        if action == "get":
            self.call("GET", self.base() + path)
        elif action in ("patch", "put"):
            expected = self.tasks[task_id] or {}
            etag = f'"{task_id}.{expected.get("version")}"'
            body = {"title": f"edited {uuid.uuid4().hex[:8]}"} if action == "put" else {"status": "in_progress"}
            method = "PUT" if action == "put" else "PATCH"
            response = self.call(method, self.base() + path, json=body, headers={"If-Match": etag})
            if response.status_code == 200:
                self.tasks[task_id] = response.json()
        elif action == "list":
            self.call("GET", self.base() + "/tasks", params={"limit": "10", "priority": "high"})
        elif action == "delete":
            if self.call("DELETE", self.base() + path).status_code == 204:
                self.tasks[task_id] = None
        elif action == "export":
            self.call("GET", self.endpoints.export_url + "/tasks/export", params={"priority": "low"})
        elif action == "attach":
            body = {"fileName": "a.txt", "contentType": "text/plain", "size": 3}
            self.call("POST", self.base() + path + "/attachments", json=body)
        else:
            self.increment(shared_id)

    def increment(self, shared_id: str) -> None:
        current = self.call("GET", self.base() + f"/tasks/{shared_id}")
        if current.status_code != 200:
            return
        count = int(current.json()["description"] or "0")
        response = self.call(
            "PATCH",
            self.base() + f"/tasks/{shared_id}",
            json={"description": str(count + 1)},
            headers={"If-Match": current.headers["ETag"]},
        )
        if response.status_code == 200:
            self.increments += 1

    def check(self) -> list[str]:
        """What the stack holds that no acknowledged response implies."""
        wrong = []
        for task_id, expected in self.tasks.items():
            response = self.session.get(self.endpoints.api_url + f"/tasks/{task_id}", timeout=30)
            if expected is None and response.status_code != 404:
                wrong.append(f"{task_id}: deleted, but answers {response.status_code}")
            elif expected is not None and (response.status_code != 200 or response.json() != expected):
                wrong.append(f"{task_id}: expected version {expected['version']}, got {response.text[:120]}")
        return wrong


def run_soak(endpoints: Endpoints, *, seconds: float, clients: int, seed: int = 7) -> SoakResult:
    result = SoakResult(seconds=seconds)
    lock = threading.Lock()
    setup = requests.post(
        endpoints.api_url + "/tasks",
        json={"title": "shared counter", "description": "0"},
        headers={"Authorization": f"Bearer {endpoints.token}"},
        timeout=30,
    )
    setup.raise_for_status()
    shared_id = setup.json()["taskId"]
    workers = [_Client(endpoints, result, lock, seed + n) for n in range(clients)]
    deadline = time.monotonic() + seconds

    def run(client: _Client) -> None:
        while time.monotonic() < deadline:
            client.step(shared_id)

    threads = [threading.Thread(target=run, args=(client,)) for client in workers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    for client in workers:
        result.mismatches += client.check()
    final = requests.get(
        endpoints.api_url + f"/tasks/{shared_id}", headers={"Authorization": f"Bearer {endpoints.token}"}, timeout=30
    ).json()
    acknowledged = result.increments = sum(client.increments for client in workers)
    result.lost_updates = len(result.mismatches) + abs(int(final["description"]) - acknowledged)
    return result


def main() -> int:
    from tests.local_support import StackProcess, start_dynamodb_local

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    dynamodb = start_dynamodb_local()
    try:
        with StackProcess(dynamodb_endpoint=dynamodb.endpoint, table_name="soak") as stack:
            info = stack.info
            endpoints = Endpoints(
                info["api_url"], info["function_url"], info["export_url"], stack.issuer().token(f"soak-{uuid.uuid4()}")
            )
            print(f"soak: {args.clients} clients for {args.seconds:.0f} s against DynamoDB Local", flush=True)
            result = run_soak(endpoints, seconds=args.seconds, clients=args.clients)
            print(result.report())
            for mismatch in result.mismatches[:10]:
                print(f"  lost: {mismatch}")
    finally:
        dynamodb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
