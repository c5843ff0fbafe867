"""What reading the cursor key from Secrets Manager costs the CRUD function, against a literal key.

Cold starts, each in a fresh process (spawn to exit) with the function's real handler, interleaved so
that drift hits all alike: a GET (signs no cursor: it must cost nothing extra) and a list of one task
with more to come (signs a cursor: it pays the first key read). Then the first key read alone, in a
process that already loaded the handler's imports. DynamoDB and Secrets Manager are moto on loopback,
so the figures show the code's own cost, not the network's. Run with `.venv/bin/python
bench/bench_cursor_key.py`; it prints figures and asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from local.aws import table_definition  # noqa: E402
from local.dynamodb_local import free_port  # noqa: E402
from tests.support import make_event  # noqa: E402

TABLE = "bench-tasks"
USER = "bench-user"

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

FIRST_KEY_READ_CHILD = """
import os, time
from tasks.app import lambda_handler
from core.cursor_keys import SecretsManagerKeys
from core.wiring import secretsmanager_client
keys = SecretsManagerKeys(os.environ["CURSOR_SECRET_ARN"], secretsmanager_client)
started = time.perf_counter()
next(keys.accepted())
print(time.perf_counter() - started)
"""


def environment(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": "bench-bucket",
        "JWT_ISSUER": "https://issuer.bench",
        "JWT_AUDIENCE": "bench",
        "ATTACHMENT_MAX_BYTES": "10485760",
        "ATTACHMENT_MAX_COUNT": "20",
        "ATTACHMENT_CONTENT_TYPES": "application/pdf",
        "POWERTOOLS_SERVICE_NAME": "tasks",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(ROOT / "src"),
    }


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        literal = {**environment(endpoint), "CURSOR_SECRET": "bench-cursor-secret-0123456789abcdef"}
        os.environ.update(literal)
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(**{**table_definition(), "TableName": TABLE})
        from core.config import Settings
        from core.wiring import build_services, s3_client

        tasks = build_services(Settings.from_environment(), dynamodb, s3_client).tasks
        task = tasks.create(USER, {"title": "cold start probe"})
        tasks.create(USER, {"title": "a second task, so a list of one has a next page"})
        secret_arn = boto3.client("secretsmanager").create_secret(Name="bench-cursor-key", SecretString="k" * 64)["ARN"]
        in_secrets_manager = {**environment(endpoint), "CURSOR_SECRET_ARN": secret_arn}
        in_secrets_manager.pop("CURSOR_SECRET")  # os.environ holds the literal key since the set-up above

        requests = {
            "cold GET (signs no cursor)": json.dumps(make_event("get-task", user=USER, task_id=task.taskId)),
            "cold list (signs a cursor)": json.dumps(make_event("list-tasks", user=USER, query={"limit": "1"})),
        }
        keys = {"literal key": literal, "Secrets Manager": in_secrets_manager}
        timings: dict[tuple[str, str], list[float]] = {(r, k): [] for r in requests for k in keys}
        for _ in range(args.runs):
            for (request, key), values in timings.items():
                values.append(timed([sys.executable, "-c", HANDLER_CHILD, requests[request]], keys[key]))
        first_reads = [
            float(
                subprocess.run(
                    [sys.executable, "-c", FIRST_KEY_READ_CHILD],
                    env=in_secrets_manager,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(args.runs)
        ]
    finally:
        server.stop()

    print(f"Cursor key: Secrets Manager (moto) against a literal key, fresh process each, median of {args.runs}")
    for request in requests:
        plain, fetched = (statistics.median(timings[(request, key)]) for key in keys)
        print(
            f"  {request:<28} literal {plain * 1000:7.1f} ms  Secrets Manager {fetched * 1000:7.1f} ms"
            f"  extra {(fetched - plain) * 1000:+7.1f} ms"
        )
    print(
        "  first key read in a started function (Powertools parameters import, client, GetSecretValue)"
        f"  {statistics.median(first_reads) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
