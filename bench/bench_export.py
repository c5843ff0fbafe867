"""Export benchmark: the app's memory stays flat, and its throughput stays close to a bare DynamoDB Query.

Not a test; run it by hand:

    .venv/bin/python bench/bench_export.py [--small 1000] [--large 100000] [--threads 8]

It starts moto's server on a loopback port with the table from template.yaml, loads the tasks of one
user per size (BatchWriteItem, 25 items a call, items made by the real repository), starts the
streaming app under uvicorn in a separate process, exports over HTTP (NDJSON, following nextCursor
if the export stops early) while sampling the app process's RSS, and compares export throughput
with a bare paginated boto3 Query of the same items against the same moto server.
"""

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import psutil
import requests
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from core.config import Settings  # noqa: E402 - after the path set-up above
from core.data.items import deserialize, serialize, task_from_item, task_item, task_json_from_item  # noqa: E402
from core.data.tasks import _items_as_sent  # noqa: E402
from core.http.bodies import TaskFields  # noqa: E402
from core.services.tasks import SCROLL_PAGE_SIZE  # noqa: E402
from core.wiring import build_services, s3_client  # noqa: E402
from local.aws import table_definition  # noqa: E402
from local.issuer import LocalIssuer, generate_key  # noqa: E402

TABLE = "bench-tasks"
ISSUER = "https://issuer.bench"
AUDIENCE = "bench"
REGION = "us-east-1"
SAMPLE_SECONDS = 0.005
# uvicorn serving streaming.app:app as run.sh does, with one change for moto: it serializes ~3 ms per
# item and scans the whole partition per Query, so a 1000-item page of a 100,000-task user takes longer
# than the production read timeout of 5 s (DynamoDB answers such a page in tens of milliseconds).
APP_BOOT = """
import sys, boto3, uvicorn
from botocore.config import Config
from core.config import ExportSettings
from core.wiring import AWS_CLIENT_CONFIG, build_services, s3_client
from streaming.app import create_app
settings = ExportSettings.from_environment()
dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG.merge(Config(read_timeout=120)))
app = create_app(settings, build_services(settings, dynamodb, s3_client))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
"""


@dataclass
class Export:
    tasks: int
    seconds: float
    responses: int
    body_bytes: int
    peak_rss: int
    app_cpu_seconds: float
    first_byte_seconds: float  # from the request to the first task of the first response


# --- infrastructure ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def jwks_server(issuer: LocalIssuer) -> Iterator[str]:
    body = json.dumps(issuer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def streaming_app(moto_url: str, jwks_url: str, timeout_seconds: int, log: Path) -> Iterator[tuple[str, int]]:
    """The app under uvicorn in its own process: (base URL, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": "bench-attachments",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_URL": jwks_url,
        "CURSOR_SECRET": "bench-cursor-secret-0123456789abcdef",
        "EXPORT_TIMEOUT_SECONDS": str(timeout_seconds),
        "EXPORT_SAFETY_SECONDS": "25",
        "EXPORT_MAX_BYTES": "150000000",
        "POWERTOOLS_SERVICE_NAME": "bench-export",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    command = [sys.executable, "-c", APP_BOOT, str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT / "src", env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {log}")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- data ----------------------------------------------------------------------------------------


def load_tasks(client: Any, owner: str, count: int, threads: int) -> float:
    """Write `count` tasks for `owner`, 25 per BatchWriteItem, from several threads; seconds taken."""
    statuses = ("pending", "in_progress", "completed", "cancelled")

    tasks = build_services(Settings(table_name=TABLE, bucket_name="bench-attachments"), client, s3_client).tasks

    def write_chunk(start: int) -> None:
        fields = (
            TaskFields(
                title=f"Task number {n}",
                description="Benchmark task with a description of realistic length. " * 2,
                status=statuses[n % 4],
                tags=["bench", f"group-{n % 10}"],
                dueDate=f"2030-{n % 12 + 1:02d}-{n % 28 + 1:02d}" if n % 2 else None,
            ).values()
            for n in range(start, min(start + 250, count))
        )
        tasks.import_tasks(owner, fields)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write_chunk, range(0, count, 250)))
    return time.perf_counter() - started


# --- measurements --------------------------------------------------------------------------------


def bare_query(client: Any, owner: str) -> tuple[int, float]:
    """Every task of `owner` with a paginated Query, pages as big as the export's: (items, seconds)."""
    pages = client.get_paginator("query").paginate(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :tasks)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{owner}"}, ":tasks": {"S": "TASK#"}},
        ScanIndexForward=False,
        PaginationConfig={"PageSize": SCROLL_PAGE_SIZE},
    )
    started = time.perf_counter()
    count = sum(len(page["Items"]) for page in pages)
    return count, time.perf_counter() - started


class RssSampler:
    """The peak resident set size of a process, sampled from a thread."""

    def __init__(self, pid: int):
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def export(url: str, pid: int, token: str) -> Export:
    """Export every task over HTTP, following nextCursor, while sampling the app's RSS."""
    tasks = responses = body_bytes = 0
    cursor = None
    first_byte: float | None = None
    app = psutil.Process(pid)
    cpu_before = sum(app.cpu_times()[:2])
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        while True:
            params = {"cursor": cursor} if cursor else {}
            headers = {"authorization": f"Bearer {token}"}
            with requests.get(f"{url}/tasks/export", params=params, headers=headers, stream=True, timeout=60) as r:
                r.raise_for_status()
                last = b""
                for line in r.iter_lines(chunk_size=64 * 1024):
                    if first_byte is None:
                        first_byte = time.perf_counter() - started
                    body_bytes += len(line) + 1
                    tasks += 1
                    last = line
            responses += 1
            tasks -= 1  # the final line is not a task
            end = json.loads(last)
            if "_end" not in end:
                raise RuntimeError(f"the export failed: {end}")
            cursor = end["_end"]["nextCursor"]
            if cursor is None:
                break
        seconds = time.perf_counter() - started
    cpu = sum(app.cpu_times()[:2]) - cpu_before
    return Export(tasks, seconds, responses, body_bytes, sampler.peak, cpu, first_byte or 0.0)


# --- the app's CPU per task, in process -------------------------------------------------------------

LAMBDA_MB_PER_VCPU = 1769  # Lambda gives a function one full vCPU at 1,769 MB, in proportion below
STREAM_RATE_BYTES = 2 * 1024 * 1024  # a streamed response's bandwidth after its first 6 MB


def per_task_cpu(count: int = 5000, rounds: int = 5) -> dict[str, float]:
    """CPU microseconds per task for each step an export page goes through, best of `rounds`.

    The same DynamoDB Query response (as the wire carries it) is parsed by botocore as the client does,
    then turned into output lines the old way (deserializer -> Task -> to_json -> dumps) and the new one
    (straight from the typed item -> dumps).
    """
    import botocore.session
    from botocore.parsers import create_parser

    from core.domain.models import Task

    service = botocore.session.get_session().get_service_model("dynamodb")
    operation = service.operation_model("Query")
    now = "2026-11-26T00:00:00.000000Z"
    tasks = [
        Task(
            taskId=f"01JDX6Z8Q3V5K7M9P1R3T{n:05d}",
            userId="bench-user",
            title=f"Task number {n}",
            description="Benchmark task with a description of realistic length. " * 2,
            dueDate="2030-01-01" if n % 2 else None,
            tags=["bench", f"group-{n % 10}"],
            createdAt=now,
            updatedAt=now,
            version=1,
        )
        for n in range(count)
    ]
    body = json.dumps({"Items": [serialize(task_item(task)) for task in tasks], "Count": count}).encode()
    response = {"status_code": 200, "headers": {}, "body": body}

    def best(step: Any) -> float:
        timings = []
        for _ in range(rounds):
            started = time.process_time()
            step()
            timings.append(time.process_time() - started)
        return min(timings) / count * 1e6

    parsed = create_parser("json").parse(response, operation.output_shape)
    items = parsed["Items"]
    dumps = framing_dumps()

    def parse_items_as_sent() -> None:
        raw, extra = dict(response), {}
        _items_as_sent(response_dict=raw, customized_response_dict=extra)
        create_parser("json").parse(raw, operation.output_shape).update(extra)

    return {
        "old: botocore parses the items": best(lambda: create_parser("json").parse(response, operation.output_shape)),
        "old: deserialize, model, to_json, dumps": best(
            lambda: [dumps(task_from_item(deserialize(item)).to_json()) for item in items]
        ),
        "new: items as sent (json.loads)": best(parse_items_as_sent),
        "new: item to JSON, dumps": best(lambda: [dumps(task_json_from_item(item)) for item in items]),
    }


def framing_dumps() -> Any:
    from streaming.framing import dumps

    return dumps


def print_per_task_cpu() -> float:
    figures = per_task_cpu()
    print("app CPU per exported task, in process (best of 5 over 5,000 tasks)")
    for label, micros in figures.items():
        print(f"  {label:<42} {micros:6.1f} us")
    old = figures["old: botocore parses the items"] + figures["old: deserialize, model, to_json, dumps"]
    new = figures["new: items as sent (json.loads)"] + figures["new: item to JSON, dumps"]
    print(f"  {'total per task, old path':<42} {old:6.1f} us")
    print(f"  {'total per task, new path':<42} {new:6.1f} us  ({new / old:.2f} of the old)")
    return new


def print_memory_arithmetic(micros_per_task: float, bytes_per_task: float, memory_mb: int) -> None:
    """Whether the app, at the function's vCPU share, writes faster than Lambda streams (2 MB/s after 6 MB)."""
    print(f"is the app the bottleneck? ({micros_per_task:.0f} us of one vCPU and {bytes_per_task:.0f} bytes per task)")
    for memory in sorted({256, 512, 1024, memory_mb}):
        share = min(memory / LAMBDA_MB_PER_VCPU, 1.0)
        rate = share / (micros_per_task / 1e6) * bytes_per_task
        verdict = "faster than the stream" if rate > STREAM_RATE_BYTES else "SLOWER than the stream"
        marker = "  <- ExportFunction's MemorySize" if memory == memory_mb else ""
        print(f"  {memory:>5} MB = {share:.2f} vCPU: {rate / 1e6:6.1f} MB/s of output, {verdict} (2.1 MB/s){marker}")


def function_memory(logical_id: str = "ExportFunction") -> int:
    from local.template import load_yaml

    return int(load_yaml()["Resources"][logical_id]["Properties"]["MemorySize"])


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="tasks in the small export (default 1000)")
    parser.add_argument("--large", type=int, default=100_000, help="tasks in the large export (default 100000)")
    parser.add_argument("--threads", type=int, default=8, help="loader threads (default 8)")
    parser.add_argument("--timeout", type=int, default=3600, help="EXPORT_TIMEOUT_SECONDS of the app (default 3600)")
    parser.add_argument("--cpu-only", action="store_true", help="only the in-process CPU per task and the arithmetic")
    args = parser.parse_args()

    micros = print_per_task_cpu()
    print()
    if args.cpu_only:
        print_memory_arithmetic(micros, 400.0, function_memory())
        return

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    issuer = LocalIssuer(None, ISSUER, AUDIENCE, key=generate_key())
    log = Path(tempfile.gettempdir()) / "bench-export-app.log"
    rows = []
    with moto_server() as moto_url, jwks_server(issuer) as jwks_url:
        client = boto3.client(
            "dynamodb",
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto takes any
        )
        client.create_table(**table_definition(table_name=TABLE))
        with streaming_app(moto_url, jwks_url, args.timeout, log) as (url, pid):
            load_tasks(client, "warm-up", 50, args.threads)
            export(url, pid, issuer.token("warm-up"))  # JWKS fetched, imports and connections warm
            baseline = psutil.Process(pid).memory_info().rss
            for size in (args.small, args.large):
                owner = f"bench-{size}"
                print(f"loading {size:,} tasks ...", flush=True)
                load_seconds = load_tasks(client, owner, size, args.threads)
                print(f"  loaded in {load_seconds:.1f} s; bare Query ...", flush=True)
                query_count, query_seconds = bare_query(client, owner)
                print("  export ...", flush=True)
                result = export(url, pid, issuer.token(owner))
                if not result.tasks == query_count == size:
                    raise RuntimeError(f"counts differ: export {result.tasks}, query {query_count}, loaded {size}")
                rows.append((size, load_seconds, query_seconds, result))

    mb = 1024 * 1024
    print()
    print(f"app RSS after warm-up {baseline / mb:.1f} MB; export and Query pages of {SCROLL_PAGE_SIZE} items")
    header = (
        f"{'tasks':>8} {'load s':>7} {'Query/s':>8} {'export/s':>8} {'ratio':>5} {'resp':>4} "
        f"{'body MB':>7} {'peak RSS MB':>11} {'app CPU us/task':>15}"
    )
    print(header)
    print("-" * len(header))
    for size, load_seconds, query_seconds, result in rows:
        query_rate, export_rate = size / query_seconds, size / result.seconds
        print(
            f"{size:>8,} {load_seconds:>7.1f} {query_rate:>8,.0f} {export_rate:>8,.0f} "
            f"{export_rate / query_rate:>5.2f} "
            f"{result.responses:>4} {result.body_bytes / mb:>7.1f} {result.peak_rss / mb:>11.1f} "
            f"{result.app_cpu_seconds / size * 1e6:>15.0f}"
        )
    (small, _, _, small_result), (large, _, large_query_seconds, large_result) = rows
    growth = (large_result.peak_rss - small_result.peak_rss) / mb
    print()
    print(f"peak RSS growth {small:,} -> {large:,} tasks: {growth:+.1f} MB (target < 10 MB)")
    ratio = large_query_seconds / large_result.seconds
    print(f"export / bare Query throughput at {large:,} tasks: {ratio:.2f} (target >= 0.8)")
    print("app CPU us/task: the app process's CPU time per exported task, DynamoDB client work included")
    print(
        f"time to first byte: {small_result.first_byte_seconds * 1000:.0f} ms ({small:,} tasks), "
        f"{large_result.first_byte_seconds * 1000:.0f} ms ({large:,} tasks)"
    )
    print()
    print_memory_arithmetic(micros, large_result.body_bytes / large, function_memory())


if __name__ == "__main__":
    main()
