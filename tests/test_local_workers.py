"""Local functions run as Lambda runs them: one process per execution environment, limits, timeouts, crashes.

The function is the test-only `tests/lambda_fixtures/handlers.py`, served by `FunctionPool` and put
behind the HTTP API and function URL emulators. `Rendezvous` proves overlap without sleeping: each
invocation connects and then waits for the test's answer, so N accepted connections means N
invocations inside the handler at the same time.
"""

import copy
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest

from local import REPO_ROOT
from local.events import Response
from local.gateway import FunctionUrlEmulator, HttpApiEmulator
from local.template import Template
from local.workers import (
    DEFAULT_CONCURRENCY,
    MAX_INVOKE_BYTES,
    FunctionPool,
    HandlerError,
    InvocationFailed,
    InvocationTimedOut,
    Throttled,
    WorkerCrashed,
)
from tests.local_support import api_spec, exited, request

FIXTURES = Path(__file__).parent / "lambda_fixtures"


class Rendezvous:
    """A loopback listener the `/rendezvous` invocations connect to; they return when released."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(60)
        self.port = self.server.getsockname()[1]
        self.inside: list[tuple[socket.socket, int]] = []

    def wait_inside(self, count: int) -> list[int]:
        """Block until `count` more invocations are inside the handler at once; their pids."""
        arrived = []
        for _ in range(count):
            connection, _ = self.server.accept()
            pid = int(connection.makefile().readline())
            self.inside.append((connection, pid))
            arrived.append(pid)
        return arrived

    def release(self) -> None:
        for connection, _ in self.inside:
            connection.sendall(b"go")
            connection.close()
        self.inside = []

    def close(self) -> None:
        self.release()
        self.server.close()


@pytest.fixture
def rendezvous() -> Iterator[Rendezvous]:
    meeting = Rendezvous()
    yield meeting
    meeting.close()


class Log(io.StringIO):
    """The pools' log; a worker's own output arrives through a pump thread, so tests wait for it by content."""

    def __init__(self) -> None:
        super().__init__()
        self._written = threading.Condition()

    def write(self, text: str) -> int:
        with self._written:
            written = super().write(text)
            self._written.notify_all()
        return written

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()

    def shows(self, text: str, timeout: float = 10) -> bool:
        """Whether `text` is logged, waiting for it (not for a while) up to `timeout` seconds."""
        with self._written:
            return self._written.wait_for(lambda: text in self.getvalue(), timeout)


@pytest.fixture
def log() -> Log:
    return Log()


def make_pool(log: Log, **options: Any) -> FunctionPool:
    options = {"timeout_seconds": 10, "memory_mb": 256, **options}
    environment = {"FIXTURE_SETTING": "from the template"}
    return FunctionPool("fixture-fn", "handlers.handler", FIXTURES, environment, log=log, **options)


@pytest.fixture
def pools() -> Iterator[list[FunctionPool]]:
    started: list[FunctionPool] = []
    yield started
    for pool in started:
        pool.stop()


def pool_of(pools: list[FunctionPool], log: Log, **options: Any) -> FunctionPool:
    pool = make_pool(log, **options)
    pools.append(pool)
    return pool


def call(pool: FunctionPool, path: str, **query: Any) -> dict[str, Any]:
    event = {"rawPath": path, "queryStringParameters": {name: str(value) for name, value in query.items()}}
    return dict(json.loads(pool.invoke(event)["body"]))


def get(app: Any, target: str) -> Response:
    response: Response = app(request("GET", target, headers=[("host", "127.0.0.1")]))
    return response


def emulators(pool: FunctionPool) -> tuple[HttpApiEmulator, FunctionUrlEmulator]:
    api = api_spec([("GET", "/{action}")], authorizer=None)
    return HttpApiEmulator(api, {"Fn": pool}, None), FunctionUrlEmulator(pool)


# --- execution environments -----------------------------------------------------------------------------


def test_overlapping_invocations_run_at_once_in_separate_warm_processes(
    pools: list[FunctionPool], log: Log, rendezvous: Rendezvous
) -> None:
    pool = pool_of(pools, log, concurrency=3)
    with ThreadPoolExecutor(3) as executor:
        # When three invocations arrive together, all three are inside the handler at the same time
        first = [executor.submit(call, pool, "/rendezvous", port=rendezvous.port) for _ in range(3)]
        inside = rendezvous.wait_inside(3)
        rendezvous.release()
        first_results = [future.result() for future in first]
        # And the next three reuse the same warm processes, module state included
        second = [executor.submit(call, pool, "/rendezvous", port=rendezvous.port) for _ in range(3)]
        inside_again = rendezvous.wait_inside(3)
        rendezvous.release()
        second_results = [future.result() for future in second]

    assert len(set(inside)) == 3 and set(inside) == {result["pid"] for result in first_results}
    assert sorted(inside_again) == sorted(inside)
    assert [result["calls"] for result in first_results + second_results] == [1, 1, 1, 2, 2, 2]
    assert len(pool.cold_starts) == 3 and pool.size == 3
    assert sum("cold start" in line for line in log.lines()) == 3
    assert sum("Init Duration:" in line for line in log.lines()) == 3, "one REPORT with Init Duration per cold start"


def test_a_worker_gets_the_functions_environment_and_a_lambda_context(pools: list[FunctionPool], log: Log) -> None:
    pool = pool_of(pools, log, timeout_seconds=4)
    result = call(pool, "/echo")

    assert result["environment"] == {
        "AWS_LAMBDA_FUNCTION_NAME": "fixture-fn",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "FIXTURE_SETTING": "from the template",
    }
    assert result["leaked"] == [], "nothing from the parent's environment but what Lambda would set"
    assert result["functionName"] == "fixture-fn" and 0 < result["remainingMs"] <= 4000
    request_lines = [line for line in log.lines() if line.startswith(f"[fixture-fn {result['requestId']}]")]
    assert any("START RequestId:" in line for line in request_lines)
    assert any(re.search(r"REPORT RequestId: \S+\tDuration: [\d.]+ ms", line) for line in request_lines)


def test_the_remaining_time_counts_down_to_the_deadline(pools: list[FunctionPool], log: Log) -> None:
    pool = pool_of(pools, log, timeout_seconds=1)
    readings = call(pool, "/countdown")["readings"]

    assert readings[0] <= 1000 and readings[-1] <= 100
    assert readings == sorted(readings, reverse=True) and readings[0] > readings[-1]


def test_a_handler_error_is_reported_as_lambda_reports_it_and_the_worker_stays_warm(
    pools: list[FunctionPool], log: Log
) -> None:
    pool = pool_of(pools, log)
    with pytest.raises(HandlerError) as raised:
        call(pool, "/fail")

    assert raised.value.error_type == "ValueError" and "failing on purpose" in raised.value.error_message
    assert raised.value.error["stackTrace"], "the stack trace, as in Lambda's error payload"
    assert log.shows("[ERROR] ValueError: failing on purpose"), "the worker's own log line, pumped by a thread"
    assert call(pool, "/echo")["calls"] == 2, "the same environment serves the next invocation"


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("no_such_module.handler", "Runtime.ImportModuleError", "Unable to import module 'no_such_module'"),
        ("handlers.no_such_handler", "Runtime.HandlerNotFound", "Handler 'no_such_handler' missing on module"),
    ],
)
def test_a_handler_that_cannot_be_loaded_fails_like_lambda_init(
    log: Log, handler: str, error_type: str, message: str
) -> None:
    pool = FunctionPool("broken", handler, FIXTURES, {}, log=log)
    try:
        with pytest.raises(HandlerError) as raised:
            pool.invoke({})
    finally:
        pool.stop()
    assert raised.value.error_type == error_type
    assert message in raised.value.error_message
    assert log.shows(f"[broken INIT] [ERROR] {error_type}"), "the runtime logs it too"


def test_a_request_or_a_response_past_lambdas_payload_limit_fails_and_the_worker_stays_warm(
    pools: list[FunctionPool], log: Log
) -> None:
    pool = pool_of(pools, log)
    with pytest.raises(InvocationFailed) as request_too_large:
        pool.invoke({"rawPath": "/echo", "padding": "x" * MAX_INVOKE_BYTES})
    assert pool.size == 0, "refused before any worker saw it"

    with pytest.raises(HandlerError) as response_too_large:
        call(pool, "/big", bytes=MAX_INVOKE_BYTES)

    assert request_too_large.value.error_type == "RequestTooLargeException"
    assert response_too_large.value.error_type == "Function.ResponseSizeTooLarge"
    assert call(pool, "/big", bytes=MAX_INVOKE_BYTES - 1000)["calls"] == 2, "just under the limit, same worker"


# --- limits, timeouts and crashes, and what the HTTP API and function URL answer -------------------------


def test_an_invocation_past_its_timeout_is_stopped_and_the_next_one_gets_a_fresh_worker(
    pools: list[FunctionPool], log: Log
) -> None:
    pool = pool_of(pools, log, timeout_seconds=1)
    api, url = emulators(pool)
    warm_pid = call(pool, "/echo")["pid"]

    timed_out_api = get(api, "/hang")
    timed_out_url = get(url, "/hang")
    after = call(pool, "/echo")

    assert (timed_out_api.status_code, timed_out_api.json) == (500, {"message": "Internal Server Error"})
    assert timed_out_url.status_code == 502
    assert exited(warm_pid), "the worker that ran past its timeout was killed"
    assert after["pid"] != warm_pid and after["calls"] == 1, "a fresh environment"
    assert len(re.findall(r"Task timed out after 1\.\d\d seconds", log.getvalue())) == 2
    with pytest.raises(InvocationTimedOut) as raised:
        call(pool, "/hang")
    assert raised.value.error_type == "Sandbox.Timedout"


def test_past_the_concurrency_limit_and_a_full_queue_invocations_are_throttled(
    pools: list[FunctionPool], log: Log, rendezvous: Rendezvous
) -> None:
    pool = pool_of(pools, log, concurrency=2, queue_bound=0)
    api, url = emulators(pool)
    with ThreadPoolExecutor(2) as executor:
        busy = [executor.submit(get, api, f"/rendezvous?port={rendezvous.port}") for _ in range(2)]
        rendezvous.wait_inside(2)

        throttled_api = get(api, "/echo")
        throttled_url = get(url, "/echo")
        with pytest.raises(Throttled) as raised:
            call(pool, "/echo")

        rendezvous.release()
        assert [future.result().status_code for future in busy] == [200, 200]

    assert (throttled_api.status_code, throttled_api.json) == (500, {"message": "Internal Server Error"})
    assert (throttled_url.status_code, throttled_url.json) == (429, {"Message": "Rate Exceeded."})
    assert raised.value.error_type == "TooManyRequestsException"
    assert pool.size == 2 and call(pool, "/echo")["calls"] >= 2, "served again once a worker is free"


def test_a_queued_invocation_waits_for_a_free_worker_and_one_past_the_queue_is_throttled(
    pools: list[FunctionPool], log: Log, rendezvous: Rendezvous
) -> None:
    pool = pool_of(pools, log, concurrency=1, queue_bound=1)
    with ThreadPoolExecutor(3) as executor:
        first = executor.submit(call, pool, "/rendezvous", port=rendezvous.port)
        (inside,) = rendezvous.wait_inside(1)
        later: list[Future[dict[str, Any]]] = [executor.submit(call, pool, "/echo") for _ in range(2)]
        done, _ = wait(later, return_when=FIRST_COMPLETED, timeout=30)  # the one past the queue, at once
        rendezvous.release()
        results = [future.exception() or future.result() for future in later]

    assert first.result()["pid"] == inside
    assert len(done) == 1 and isinstance(next(iter(done)).exception(), Throttled)
    served = [result for result in results if isinstance(result, dict)]
    assert len(served) == 1 and served[0]["pid"] == inside, "the queued invocation ran in the freed worker"


def test_a_worker_killed_mid_invocation_fails_that_request_with_a_5xx_and_is_replaced(
    pools: list[FunctionPool], log: Log, rendezvous: Rendezvous
) -> None:
    pool = pool_of(pools, log)
    api, url = emulators(pool)
    with ThreadPoolExecutor(2) as executor:
        through_api = executor.submit(get, api, f"/rendezvous?port={rendezvous.port}")
        (pid,) = rendezvous.wait_inside(1)
        os.kill(pid, signal.SIGKILL)
        api_response = through_api.result(timeout=30)

        through_url = executor.submit(get, url, f"/rendezvous?port={rendezvous.port}")
        (second_pid,) = rendezvous.wait_inside(1)
        os.kill(second_pid, signal.SIGKILL)
        url_response = through_url.result(timeout=30)

    assert (api_response.status_code, api_response.json) == (500, {"message": "Internal Server Error"})
    assert url_response.status_code == 502
    assert second_pid != pid
    assert "Runtime exited with error: signal: killed" in log.getvalue()
    assert call(pool, "/echo")["pid"] not in (pid, second_pid)


def test_a_worker_that_exits_mid_invocation_raises_worker_crashed(
    pools: list[FunctionPool], log: Log, rendezvous: Rendezvous
) -> None:
    pool = pool_of(pools, log)
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(call, pool, "/rendezvous", port=rendezvous.port)
        (pid,) = rendezvous.wait_inside(1)
        os.kill(pid, signal.SIGTERM)
        with pytest.raises(WorkerCrashed) as raised:
            future.result(timeout=30)

    assert raised.value.error_type == "Runtime.ExitError"
    assert raised.value.error_message.endswith("Runtime exited with error: signal: terminated")


def test_an_idle_worker_killed_from_outside_is_replaced_without_failing_anyone(
    pools: list[FunctionPool], log: Log
) -> None:
    pool = pool_of(pools, log)
    pid = call(pool, "/echo")["pid"]
    os.kill(pid, signal.SIGKILL)
    assert exited(pid)

    assert call(pool, "/echo")["pid"] != pid


def test_stop_leaves_no_worker_behind(log: Log, rendezvous: Rendezvous) -> None:
    pool = make_pool(log, concurrency=2)
    with ThreadPoolExecutor(2) as executor:
        busy = executor.submit(call, pool, "/rendezvous", port=rendezvous.port)
        idle_pid = call(pool, "/echo")["pid"]
        (busy_pid,) = rendezvous.wait_inside(1)
        pool.stop()
        with pytest.raises(WorkerCrashed):
            busy.result(timeout=30)

    assert exited(busy_pid) and exited(idle_pid)
    with pytest.raises(WorkerCrashed):
        call(pool, "/echo")


def test_a_ctrl_c_at_the_terminal_reaches_the_parent_only(pools: list[FunctionPool], log: Log) -> None:
    pid = call(pool_of(pools, log), "/echo")["pid"]

    assert os.getpgid(pid) != os.getpgrp(), "a terminal sends SIGINT to its foreground process group"


PARENT = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from local.workers import FunctionPool

code_dir, port = sys.argv[1:]
pool = FunctionPool("fixture-fn", "handlers.handler", code_dir, {}, timeout_seconds=60, log=sys.stderr)
ThreadPoolExecutor(1).submit(pool.invoke, {"rawPath": "/rendezvous", "queryStringParameters": {"port": port}})
sys.stdin.readline()
print(json.loads(pool.invoke({"rawPath": "/echo"})["body"])["pid"], flush=True)
sys.stdin.readline()
"""


def test_when_the_parent_is_killed_an_idle_worker_exits_and_a_busy_one_once_its_invocation_ends(
    rendezvous: Rendezvous,
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(FIXTURES), str(rendezvous.port)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        (busy,) = rendezvous.wait_inside(1)
        assert parent.stdin is not None and parent.stdout is not None
        parent.stdin.write("go on\n")
        parent.stdin.flush()
        idle = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()

    assert exited(idle), "its call for the next invocation failed: the Runtime API is gone"
    rendezvous.release()
    assert exited(busy), "its response had nowhere to go"


def test_the_limit_is_the_templates_reserved_concurrency_else_the_local_default(log: Log) -> None:
    template = Template.load()
    document = copy.deepcopy(dict(template.document))
    document["Resources"]["UploadEventsFunction"]["Properties"]["ReservedConcurrentExecutions"] = 2
    reserved = Template(document)

    assert FunctionPool.from_template(template, "UploadEventsFunction", {}, FIXTURES).concurrency == DEFAULT_CONCURRENCY
    pool = FunctionPool.from_template(reserved, "UploadEventsFunction", {}, FIXTURES)
    assert (pool.concurrency, pool.timeout_seconds, pool.memory_mb) == (2, 30, 256)


def test_a_relative_code_directory_is_found_from_the_worker_too(log: Log) -> None:
    pool = FunctionPool("fixture-fn", "handlers.handler", Path(os.path.relpath(FIXTURES)), {}, log=log)
    try:
        assert call(pool, "/echo")["calls"] == 1
    finally:
        pool.stop()
