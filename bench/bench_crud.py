"""CRUD function benchmarks: DynamoDB round trips per request, and cold start against bare boto3.

Run with `make bench` (or `.venv/bin/python bench/bench_crud.py`). It prints figures; it asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from local.aws import free_port  # noqa: E402
from local.events import LambdaContext  # noqa: E402
from local.template import table_definition  # noqa: E402

TABLE = "bench-tasks"
USER = "bench-user"

# The child stays minimal: whatever it imports counts in the cold start it measures.
HANDLER_CHILD = """
import json, sys
from tasks.app import lambda_handler
event = json.loads(sys.argv[1])
class Context:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 10_000
response = lambda_handler(event, Context())
assert response["statusCode"] == 200, response
"""

BOTO3_CHILD = """
import sys
import boto3
client = boto3.client("dynamodb")
key = {"pk": {"S": sys.argv[2]}, "sk": {"S": sys.argv[3]}}
item = client.get_item(TableName=sys.argv[1], Key=key, ConsistentRead=True)
assert "Item" in item
"""


def environment(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": "bench-bucket",
        "JWT_ISSUER": "https://issuer.bench",
        "JWT_AUDIENCE": "bench",
        "CURSOR_SECRET": "bench-cursor-secret-0123456789abcdef",
        "ATTACHMENT_MAX_BYTES": "10485760",
        "ATTACHMENT_MAX_COUNT": "20",
        "ATTACHMENT_CONTENT_TYPES": "application/pdf",
        "POWERTOOLS_SERVICE_NAME": "tasks",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(ROOT / "src"),
    }


def event(
    name: str, task_id: str | None = None, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "events" / f"{name}.json").read_text())
    data["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = USER
    if task_id:
        data["rawPath"] = data["requestContext"]["http"]["path"] = f"/tasks/{task_id}"
        data["pathParameters"] = {"taskId": task_id}
    if body is not None:
        data["body"] = json.dumps(body)
    data["headers"].pop("if-match", None)
    data["headers"].update(headers or {})
    return data


def round_trips(dynamodb: Any) -> None:
    from core.config import CrudSettings
    from core.wiring import s3_client
    from tasks.app import create_handler, environment

    calls: Counter[str] = Counter()
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    handler = create_handler(environment(CrudSettings.from_environment(), dynamodb, s3_client))

    def measure(label: str, request: dict[str, Any]) -> dict[str, Any]:
        calls.clear()
        response = handler(request, LambdaContext("bench", "arn:aws:lambda:us-east-1:123456789012:function:bench"))
        print(f"  {label:<28} status {response['statusCode']}  DynamoDB calls {sum(calls.values())}  {dict(calls)}")
        return response

    print("DynamoDB round trips per request")
    created = json.loads(measure("POST /tasks", event("create-task"))["body"])
    task_id = created["taskId"]
    measure("GET /tasks/{id}", event("get-task", task_id))
    measure("PATCH /tasks/{id}", event("patch-task", task_id, {"status": "in_progress"}))
    measure(
        "PATCH /tasks/{id} If-Match", event("patch-task", task_id, {"priority": "low"}, {"if-match": f'"{task_id}.2"'})
    )
    measure("PUT /tasks/{id}", event("replace-task", task_id, {"title": "replaced"}))
    measure("GET /tasks (limit 20)", event("list-tasks") | {"queryStringParameters": {"limit": "20"}})
    measure("DELETE /tasks/{id}", event("delete-task", task_id))


def cold_start(runs: int, env: dict[str, str], task_id: str) -> None:
    get_event = json.dumps(event("get-task", task_id))
    commands = {
        "handler: import + first GET": [sys.executable, "-c", HANDLER_CHILD, get_event],
        "bare boto3: import + GetItem": [sys.executable, "-c", BOTO3_CHILD, TABLE, f"USER#{USER}", f"TASK#{task_id}"],
    }
    timings: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():  # interleaved, so drift hits both alike
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            timings[label].append(time.perf_counter() - started)
    print(f"Cold start, fresh process each, median of {runs} (spawn to exit)")
    medians = {label: statistics.median(values) for label, values in timings.items()}
    for label, median in medians.items():
        print(f"  {label:<32} {median * 1000:7.1f} ms  (min {min(timings[label]) * 1000:.1f})")
    handler, bare = medians.values()
    print(f"  ratio handler / bare boto3        {handler / bare:.2f}x  (target <= 1.30x)")


IMPORT_COSTS = {
    "interpreter only": "pass",
    "boto3 + DynamoDB client": "import boto3; boto3.client('dynamodb')",
    "Powertools event handler": "import aws_lambda_powertools.event_handler",
    "Powertools Logger + Metrics": "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()",
    "Powertools Tracer (X-Ray SDK)": "from aws_lambda_powertools import Tracer; Tracer()",
    "pydantic (POST/PUT/PATCH only)": "import pydantic",
    "PyJWT + cryptography (URL only)": "import jwt.algorithms",
}


def import_costs(runs: int, env: dict[str, str]) -> None:
    print(f"Where a cold start goes: fresh process per statement, median of {runs}")
    for label, statement in IMPORT_COSTS.items():
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], env=env, check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
        print(f"  {label:<34} {statistics.median(timings) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        env = environment(endpoint)
        os.environ.update(env)
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(**{**table_definition(), "TableName": TABLE})
        round_trips(dynamodb)
        from core.config import Settings
        from core.wiring import build_services, s3_client

        tasks = build_services(Settings.from_environment(), dynamodb, s3_client).tasks
        task = tasks.create(USER, {"title": "cold start probe"})
        cold_start(args.runs, env, task.taskId)
        import_costs(max(3, args.runs // 3), env)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
