"""CRUD function benchmarks: DynamoDB round trips per request (with and without Idempotency-Key), the warm
path's CPU time per request, and the cold starts of the three functions against a bare boto3 process.

Run with `make bench` (or `.venv/bin/python bench/bench_crud.py`). It prints figures; it asserts nothing.
"""

import argparse
import compileall
import contextlib
import io
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from awslambdaric.lambda_context import LambdaContext
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from local.aws import table_definition  # noqa: E402
from local.dynamodb_local import free_port  # noqa: E402
from local.issuer import LocalIssuer, generate_key, issuer_app  # noqa: E402
from local.server import HttpServer  # noqa: E402
from tests.support import make_event  # noqa: E402

TABLE = "bench-tasks"
USER = "bench-user"
ISSUER = "https://issuer.bench"
AUDIENCE = "bench"
ATTACHMENT_SIZE = 1234

# The children stay minimal: whatever they import counts in the cold start they measure.
CONTEXT = """
class Context:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 10_000
"""
HANDLER_CHILD = f"""
import time, json, sys
from tasks.app import lambda_handler
{CONTEXT}
response = lambda_handler(json.loads(sys.argv[1]), Context())
assert response["statusCode"] == 200, response
print(time.time(), time.process_time())
"""
UPLOAD_CHILD = f"""
import time, json, sys
from uploads.handler import lambda_handler
{CONTEXT}
response = lambda_handler(json.loads(sys.argv[1]), Context())
assert response["outcome"] == "available", response
print(time.time(), time.process_time())
"""
EXPORT_CHILD = """
import time, asyncio, sys
from streaming.app import app
messages = []
requested = []
async def receive():  # the request, then nothing until the app stops listening for a disconnect
    if requested:
        await asyncio.sleep(3600)
    requested.append(True)
    return {"type": "http.request", "body": b"", "more_body": False}
async def send(message): messages.append(message)
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
         "path": "/tasks/export", "raw_path": b"/tasks/export", "query_string": b"", "root_path": "",
         "headers": [(b"authorization", sys.argv[1].encode())], "client": ("127.0.0.1", 1),
         "server": ("127.0.0.1", 8000)}
asyncio.run(app(scope, receive, send))
assert messages[0]["status"] == 200, messages
assert b'"_end"' in b"".join(m.get("body", b"") for m in messages[1:])
print(time.time(), time.process_time())
"""
BOTO3_CHILD = """
import time, sys
import boto3
client = boto3.client("dynamodb")
key = {"pk": {"S": sys.argv[2]}, "sk": {"S": sys.argv[3]}}
item = client.get_item(TableName=sys.argv[1], Key=key, ConsistentRead=True)
assert "Item" in item
print(time.time(), time.process_time())
"""


def environment(endpoint: str, jwks_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": "bench-bucket",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_URL": jwks_url,
        "CURSOR_SECRET": "bench-cursor-secret-0123456789abcdef",
        "ATTACHMENT_MAX_BYTES": "10485760",
        "ATTACHMENT_MAX_COUNT": "20",
        "ATTACHMENT_CONTENT_TYPES": "application/pdf",
        "EXPORT_MAX_BYTES": "150000000",
        "EXPORT_TIMEOUT_SECONDS": "300",
        "EXPORT_SAFETY_SECONDS": "25",
        "POWERTOOLS_SERVICE_NAME": "tasks",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "PYTHONPATH": str(ROOT / "src"),
    }


def event(
    name: str, task_id: str | None = None, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A sample event of the bench user, with no If-Match unless `headers` gives one."""
    return make_event(name, user=USER, task_id=task_id, body=body, headers=headers, drop_headers=("if-match",))


def context() -> LambdaContext:
    deadline_ms = int((time.time() + 3) * 1000)
    return LambdaContext("bench", None, None, deadline_ms, "arn:aws:lambda:us-east-1:123456789012:function:bench")


def crud_handler(dynamodb: Any) -> Any:
    from core.config import CrudSettings
    from core.wiring import s3_client
    from tasks.app import create_handler, environment

    return create_handler(environment(CrudSettings.from_environment(), dynamodb, s3_client))


def round_trips(dynamodb: Any) -> dict[str, dict[str, Any]]:
    """Print the DynamoDB calls of each request; return one real response per operation, for the stubs."""
    calls: Counter[str] = Counter()
    responses: dict[str, dict[str, Any]] = {}

    def record(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        responses[model.name] = {key: value for key, value in parsed.items() if key != "ResponseMetadata"}

    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    dynamodb.meta.events.register("after-call.dynamodb", record)
    handler = crud_handler(dynamodb)

    def measure(label: str, request: dict[str, Any]) -> dict[str, Any]:
        calls.clear()
        with contextlib.redirect_stdout(io.StringIO()):
            response = handler(request, context())
        print(f"  {label:<34} status {response['statusCode']}  DynamoDB calls {sum(calls.values())}  {dict(calls)}")
        return response

    print("DynamoDB round trips per request")
    created = json.loads(measure("POST /tasks", event("create-task"))["body"])
    task_id = created["taskId"]
    measure("GET /tasks/{id}", event("get-task", task_id))
    measure("PATCH /tasks/{id}", event("patch-task", task_id, {"status": "in_progress"}))
    stubs = {name: responses[name] for name in ("PutItem", "GetItem", "UpdateItem")}
    measure(
        "PATCH /tasks/{id} If-Match", event("patch-task", task_id, {"priority": "low"}, {"if-match": f'"{task_id}.2"'})
    )
    measure("PUT /tasks/{id}", event("replace-task", task_id, {"title": "replaced"}))
    measure("GET /tasks (limit 20)", event("list-tasks") | {"queryStringParameters": {"limit": "20"}})
    measure("DELETE /tasks/{id}", event("delete-task", task_id))
    keyed = event("create-task", headers={"idempotency-key": f"bench-{time.time_ns()}"})
    measure("POST /tasks Idempotency-Key", keyed)
    measure("POST /tasks Idempotency-Key replay", keyed)
    return stubs


def warm_path(responses: dict[str, dict[str, Any]], task_id: str, requests: int) -> None:
    """CPU time of the handler per request, DynamoDB stubbed (botocore Stubber: no network, no moto)."""
    dynamodb = boto3.client("dynamodb")
    handler = crud_handler(dynamodb)
    cases = {
        "GET /tasks/{id}": ("get_item", responses["GetItem"], event("get-task", task_id)),
        "POST /tasks": ("put_item", responses["PutItem"], event("create-task")),
        "PATCH /tasks/{id}": (
            "update_item",
            responses["UpdateItem"],
            event("patch-task", task_id, {"priority": "low"}),
        ),
    }
    print(f"Warm path: handler CPU time per request, DynamoDB stubbed, {requests} requests each")
    for label, (operation, response, request) in cases.items():
        timings = []
        with Stubber(dynamodb) as stubber, contextlib.redirect_stdout(io.StringIO()):
            for _ in range(requests + 50):
                stubber.add_response(operation, response)
            for n in range(requests + 50):
                started = time.thread_time_ns()
                result = handler(request, context())
                if n >= 50:  # the first requests warm caches (routes, pydantic, JWKS-free path)
                    timings.append((time.thread_time_ns() - started) / 1e6)
                assert result["statusCode"] in (200, 201), result
        timings.sort()
        p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
        print(f"  {label:<20} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  (target p50 < 1 ms)")


def packaged_source(directory: Path) -> Path:
    """src/ with its bytecode compiled as `make build` ships it (Lambda cannot write __pycache__)."""
    shutil.copytree(ROOT / "src", directory, ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(directory, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return directory


def cold_starts(runs: int, env: dict[str, str], task_id: str, upload_key: str, token: str) -> None:
    upload = json.loads((ROOT / "events" / "upload-event.json").read_text())
    upload["detail"]["object"].update({"key": upload_key, "size": ATTACHMENT_SIZE})
    bare = [sys.executable, "-c", BOTO3_CHILD, TABLE, f"USER#{USER}", f"TASK#{task_id}"]
    commands = {
        "CRUD handler: import + first GET": [
            sys.executable,
            "-c",
            HANDLER_CHILD,
            json.dumps(event("get-task", task_id)),
        ],
        "upload-event handler: import + event": [sys.executable, "-c", UPLOAD_CHILD, json.dumps(upload)],
        "export app: import + first export": [sys.executable, "-c", EXPORT_CHILD, token],
        "bare boto3: import + GetItem": bare,
    }
    timings: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():  # interleaved, so drift hits all alike
            started = time.time()
            result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            ready, cpu_used = map(float, result.stdout.split()[-2:])
            timings[label].append(ready - started)
            cpu[label].append(cpu_used)
    print(f"Cold start, fresh process each, median of {runs}: from spawn until the response is ready (the")
    print("  interpreter's exit is no part of a Lambda cold start), wall time and the process's CPU time")
    medians = {label: statistics.median(values) for label, values in timings.items()}
    cpu_medians = {label: statistics.median(values) for label, values in cpu.items()}
    baseline, cpu_baseline = medians["bare boto3: import + GetItem"], cpu_medians["bare boto3: import + GetItem"]
    for label, median in medians.items():
        print(
            f"  {label:<38} wall {median * 1000:7.1f} ms {median / baseline:5.2f}x"
            f"   CPU {cpu_medians[label] * 1000:7.1f} ms {cpu_medians[label] / cpu_baseline:5.2f}x"
        )
    print("  ratio to bare boto3: target <= 1.30x for the CRUD handler (the export app also starts Starlette and")
    print("  fetches the issuer's JWKS on its first request; uvicorn's own start is not included)")


IMPORT_COSTS = {
    "interpreter only": "pass",
    "boto3 + DynamoDB client": "import boto3; boto3.client('dynamodb')",
    "Powertools event handler": "import aws_lambda_powertools.event_handler",
    "Powertools Logger + Metrics": "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()",
    "Powertools idempotency (header only)": "import aws_lambda_powertools.utilities.idempotency",
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
        print(f"  {label:<38} {statistics.median(timings) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "No application metrics to publish")

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    issuer = LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())
    jwks = HttpServer(issuer_app(issuer), name="bench-issuer").start()
    try:
        env = environment(f"http://127.0.0.1:{port}", f"{jwks.url}/.well-known/jwks.json")
        os.environ.update(env)
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(**{**table_definition(), "TableName": TABLE})
        responses = round_trips(dynamodb)
        from core.config import CrudSettings
        from core.wiring import build_services, s3_client

        services = build_services(CrudSettings.from_environment(), dynamodb, s3_client)
        task = services.tasks.create(USER, {"title": "cold start probe"})
        warm_path(responses, task.taskId, args.requests)
        upload = services.attachments.create(USER, task.taskId, "probe.pdf", "application/pdf", ATTACHMENT_SIZE)
        with tempfile.TemporaryDirectory(prefix="bench-src-") as scratch:
            env["PYTHONPATH"] = str(packaged_source(Path(scratch) / "src"))
            token = next(iter(issuer.bearer(USER).values()))
            cold_starts(args.runs, env, task.taskId, upload.attachment.key, token)
            import_costs(max(3, args.runs // 3), env)
    finally:
        jwks.stop()
        server.stop()


if __name__ == "__main__":
    main()
