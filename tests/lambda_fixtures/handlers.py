"""A test-only Lambda function (`handlers.handler`), served by `local.workers.FunctionPool` in tests only.

The path picks what it does (`rawPath` of a payload 2.0 event, so it works behind the HTTP API and
function URL emulators too):

- `/echo`: the worker's pid, how many invocations this worker has served (module state), the context;
- `/rendezvous?port=N`: tells the test it is inside (connects to 127.0.0.1:N and sends its pid), then
  blocks until the test answers: the test sees how many invocations are inside at once, no sleeping;
- `/hang`: never returns (the pool's timeout has to stop it);
- `/countdown`: watches `context.get_remaining_time_in_millis()` fall until under 100 ms;
- `/fail`: raises ValueError;
- `/big?bytes=N`: a result padded with N bytes.
"""

import json
import os
import socket
import threading
from typing import Any

CALLS = 0
WATCHED_VARIABLES = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "FIXTURE_SETTING")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global CALLS
    CALLS += 1
    action = str(event.get("rawPath", "/echo")).strip("/")
    query = event.get("queryStringParameters") or {}
    body: dict[str, Any] = {
        "pid": os.getpid(),
        "calls": CALLS,
        "requestId": context.aws_request_id,
        "functionName": context.function_name,
        "remainingMs": context.get_remaining_time_in_millis(),
        "environment": {name: os.environ.get(name) for name in WATCHED_VARIABLES},
        "leaked": sorted(name for name in os.environ if name.startswith("PYTEST_")),
    }
    if action == "rendezvous":
        body["reply"] = _rendezvous(int(query["port"]), context)
    elif action == "hang":
        threading.Event().wait()
    elif action == "countdown":
        body["readings"] = _countdown(context)
    elif action == "fail":
        raise ValueError(f"failing on purpose in {os.getpid()}")
    elif action == "big":
        body["padding"] = "x" * int(query["bytes"])
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _rendezvous(port: int, context: Any) -> str:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(f"{os.getpid()}\n".encode())
        connection.settimeout(context.get_remaining_time_in_millis() / 1000)
        return connection.recv(16).decode()


def _countdown(context: Any) -> list[int]:
    readings = [context.get_remaining_time_in_millis()]
    tick = threading.Event()
    while readings[-1] > 100:
        tick.wait(0.05)
        readings.append(context.get_remaining_time_in_millis())
    return readings
