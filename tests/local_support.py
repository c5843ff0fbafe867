"""Helpers for tests that use the local stack (plain functions and classes; fixtures live in conftest.py).

Unit tests of the emulators, no AWS and no network:

- `issuer = make_issuer()`: tokens signed with a key made for this run (`bad_tokens(issuer, "alice")` too);
- `handler = FakeHandler()`: a stand-in Lambda handler that records its events;
- `api = HttpApiEmulator(api_spec([...]), {"Fn": fake_function(handler)}, authorizer_for(issuer))`, then
  `api(request("GET", "/tasks/1", headers=issuer.bearer("alice")))`.

End-to-end, over HTTP:

- `stack = start_stack_process(state_dir=tmp_path)`: `python -m local run` on free ports in a child process;
  `stack.info` holds api_url (http://127.0.0.1:PORT), api_stage_url (.../dev), export_url, function_url,
  issuer_url, audience, key_path, aws_endpoint, dynamodb_endpoint, table_name, bucket_name and docs_url;
  `stack.issuer().bearer("alice")` signs accepted tokens; `stack.drain_events()` waits until S3 uploads
  reached their EventBridge function; `stack.stop()`.
- `dynamodb = start_dynamodb_local()`: DynamoDB Local (npm package, java) on a free port, then
  `start_stack_process(dynamodb_endpoint=dynamodb.endpoint, table_name="e2e", state_dir=tmp_path)`.
- `with stack_on(backend, tmp_path, table_name="e2e") as stack:` either of the two, for `backend` in
  `BACKENDS` (the end-to-end suites run on both); it checks that the stack stops cleanly.
- `start_local_stack(tmp_path)`: the same stack in this process (sets the apps' environment until stop()).
- `workers_of(stack.info["pid"])`: the stack's worker processes; `exited(pid)` waits until one is gone.
"""

import contextlib
import http.client
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit
from uuid import uuid4

import jwt
from awslambdaric.lambda_context import LambdaContext
from awslambdaric.lambda_runtime_marshaller import to_json
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from local import REPO_ROOT, STATE_DIR
from local.authorizer import JwtAuthorizer
from local.aws import port_taken
from local.dynamodb_local import dynamodb_local_command, free_port, wait_for_dynamodb
from local.issuer import LocalIssuer, generate_key
from local.notifications import DRAIN_PATH
from local.server import PortInUseError
from local.specs import ApiRoute, CorsConfig, HttpApiSpec, JwtAuthorizerSpec
from local.stack import LocalStack
from local.workers import InvocationFailed
from tests.support import lambda_context

TEST_ISSUER = "https://issuer.local.test"
TEST_AUDIENCE = "local-test-audience"
JWT = JwtAuthorizerSpec("JwtAuthorizer", "authorization")

__all__ = [
    "BACKENDS",
    "JWT",
    "TEST_AUDIENCE",
    "TEST_ISSUER",
    "DynamoDBLocal",
    "FakeHandler",
    "api_spec",
    "authorizer_for",
    "fake_function",
    "make_issuer",
    "request",
    "stack_on",
    "start_dynamodb_local",
    "start_local_stack",
    "start_stack_process",
]


def make_issuer(issuer: str = TEST_ISSUER, audience: str = TEST_AUDIENCE) -> LocalIssuer:
    """An issuer with a fresh in-memory key (nothing written to disk)."""
    return LocalIssuer(None, issuer, audience, key=generate_key())


def authorizer_for(issuer: LocalIssuer) -> JwtAuthorizer:
    """The HTTP API JWT authorizer trusting `issuer`, reading its JWKS without HTTP."""
    return JwtAuthorizer(issuer.issuer, issuer.audience, StaticJwks(issuer))


class FakeHandler:
    """A Lambda handler that records each (event, context) and answers with `response` (or calls it)."""

    def __init__(self, response: Any = None):
        self.calls: list[tuple[dict[str, Any], LambdaContext]] = []
        self.response = response if response is not None else {"statusCode": 200, "body": "ok"}

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        self.calls.append((event, context))
        if callable(self.response):
            return self.response(event, context)
        return self.response

    @property
    def event(self) -> dict[str, Any]:
        """The last event (fails the test when the handler was not called)."""
        if not self.calls:
            raise AssertionError("the handler was not called")
        return self.calls[-1][0]


class FakeFunction:
    """A handler run in this process as a worker runs it (event and result JSON round-tripped, the result by
    the runtime's own marshaller), a failure raised as `InvocationFailed`: for emulator tests that need no
    worker processes."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], name: str, timeout_seconds: float):
        self.handler, self.name, self.timeout_seconds = handler, name, timeout_seconds

    def invoke(self, event: Mapping[str, Any]) -> Any:
        context = lambda_context(self.name, self.timeout_seconds, memory_mb=256, request_id=str(uuid4()))
        try:
            result = self.handler(json.loads(json.dumps(event)), context)
            return json.loads(to_json(result))
        except Exception as exc:
            raise InvocationFailed(type(exc).__name__, str(exc)) from exc


def fake_function(
    handler: Callable[[dict[str, Any], Any], Any], *, name: str = "fake", timeout_seconds: float = 3
) -> Any:
    """A stand-in for a `FunctionPool` (anything with `invoke(event)`) around `handler`."""
    return FakeFunction(handler, name, timeout_seconds)


def api_spec(
    routes: Iterable[tuple[str, str] | tuple[str, str, str]],
    *,
    authorizer: JwtAuthorizerSpec | None = JWT,
    cors: CorsConfig | None = None,
    stage: str = "$default",
) -> HttpApiSpec:
    """An HTTP API of `(method, path[, function])` routes (function defaults to "Fn"), all behind `authorizer`."""
    built = [ApiRoute(route[0], route[1], route[2] if len(route) > 2 else "Fn", authorizer) for route in routes]
    return HttpApiSpec("TestApi", tuple(built), cors, stage)


def request(
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | str | Any = b"",
    source_ip: str = "203.0.113.7",
) -> Request:
    """A request as werkzeug's server hands it over: Host 127.0.0.1:3000 unless given, repeated headers joined
    with commas; a dict/list body is sent as JSON."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
        pairs.append(("Content-Type", "application/json"))
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name.lower()] = f"{joined[name.lower()]},{value}" if name.lower() in joined else value
    joined.setdefault("host", "127.0.0.1:3000")
    base = {"REMOTE_ADDR": source_ip}
    return EnvironBuilder(target, method=method, headers=joined, data=body, environ_base=base).get_request()


def start_local_stack(state_dir: Path, **options: Any) -> LocalStack:
    """The whole stack in this process on free ports; `state_dir` holds its key and cursor secret.

    It sets the apps' environment variables in this process until `stop()`: prefer `start_stack_process`
    for end-to-end tests that share a process with unit tests.
    """
    ports = {name: 0 for name in ("port_api", "port_export", "port_url", "port_issuer", "port_aws")}
    return LocalStack(state_dir=state_dir, **{**ports, **options}).start()


class StackProcess:
    """`python -m local run` as a child process on free ports; `info` holds what `describe()` returns.

    The test process's environment and imports stay untouched. The child's stdout (the apps' logs) is
    drained by a thread into `log` (or dropped), so it never blocks on a full pipe. `stop()` sends SIGINT,
    as Ctrl-C stops `make run`, and kills the child if it does not exit in time.
    """

    def __init__(
        self,
        *,
        dynamodb_endpoint: str | None = None,
        table_name: str | None = None,
        extra_args: Sequence[str] = (),
        log: TextIO | None = None,
        python: str = sys.executable,
    ):
        self.command = [python, "-m", "local", "run", "--ready-json", "--state-file", ""]
        for option in ("--port-api", "--port-export", "--port-url", "--port-issuer", "--port-aws", "--port-docs"):
            self.command += [option, "0"]
        if dynamodb_endpoint:
            self.command += ["--dynamodb-endpoint", dynamodb_endpoint]
        if table_name:
            self.command += ["--table-name", table_name]
        self.command += list(extra_args)
        self.log = log
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self._ready = threading.Event()
        self._pump: threading.Thread | None = None

    def start(self, *, timeout: float = 60) -> "StackProcess":
        if self.process is not None:
            raise RuntimeError("the stack process is already running")
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log if self.log is not None else None,
            text=True,
        )
        self._pump = threading.Thread(target=self._drain, name="stack-stdout", daemon=True)
        self._pump.start()
        if not self._ready.wait(timeout) or not self.info:
            code = self.stop()
            raise RuntimeError(f"`{shlex.join(self.command)}` was not ready within {timeout} s (exit status {code})")
        return self

    def _drain(self) -> None:
        stdout = self.process.stdout if self.process is not None else None
        for line in stdout or ():
            if not self._ready.is_set() and line.startswith("{"):
                self.info = json.loads(line)
                self._ready.set()
            elif self.log is not None:
                self.log.write(line)
        self._ready.set()  # the child exited: whoever waits stops waiting

    def issuer(self) -> LocalIssuer:
        """An issuer whose tokens this stack accepts (same key file, issuer URL and audience)."""
        return LocalIssuer(Path(self.info["key_path"]), self.info["issuer_url"], self.info["audience"])

    def drain_events(self, timeout: float = 30) -> None:
        """Wait until every S3 upload event so far has reached its function (no sleeping in tests)."""
        endpoint = urlsplit(self.info["aws_endpoint"])
        connection = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port, timeout=timeout + 5)
        try:
            connection.request("POST", DRAIN_PATH)
            response = connection.getresponse()
            if response.status != 200:
                raise TimeoutError(f"upload events not delivered: {response.read()!r}")
        finally:
            connection.close()

    def stop(self, *, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> "StackProcess":
        return self if self.process is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_stack_process(
    *,
    dynamodb_endpoint: str | None = None,
    table_name: str | None = None,
    state_dir: Path | None = None,
    log: TextIO | None = None,
    timeout: float = 60,
) -> StackProcess:
    """`python -m local run` in a child process on free ports (on moto, or the table on `dynamodb_endpoint`)."""
    extra = ("--state-dir", str(state_dir)) if state_dir is not None else ()
    stack = StackProcess(dynamodb_endpoint=dynamodb_endpoint, table_name=table_name, extra_args=extra, log=log)
    return stack.start(timeout=timeout)


BACKENDS = ["moto", "dynamodb-local"]  # the end-to-end suites run once on each


@contextlib.contextmanager
def stack_on(backend: str, state_dir: Path, table_name: str) -> Iterator[StackProcess]:
    """`python -m local run` with its tables on `backend` (moto, or a DynamoDB Local of its own); it must
    stop cleanly (exit status 0, not killed after the stop timeout) when the suite is done."""
    dynamodb = start_dynamodb_local() if backend == "dynamodb-local" else None
    try:
        endpoint = dynamodb.endpoint if dynamodb is not None else None
        process = start_stack_process(dynamodb_endpoint=endpoint, table_name=table_name, state_dir=state_dir)
        yield process
        code = process.stop()
        assert code == 0, f"the stack did not stop cleanly: exit status {code}"
    finally:
        if dynamodb is not None:
            dynamodb.stop()


def workers_of(pid: int) -> set[int]:
    """The worker processes (`python -m awslambdaric`, one per execution environment) whose parent is `pid`."""
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
        if parent == pid and b"awslambdaric" in command:
            found.add(int(entry.name))
    return found


def exited(pid: int, timeout: float = 10) -> bool:
    """Whether process `pid` is gone, waiting on its pidfd (no polling) for at most `timeout` seconds."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([descriptor], [], [], timeout)
        return bool(readable)
    finally:
        os.close(descriptor)


class DynamoDBLocal:
    """A DynamoDB Local java process on loopback (port 0: a free one), its output in .local/dynamodb-local-PORT.log."""

    def __init__(self, port: int = 0, *, in_memory: bool = True, db_path: Path | None = None):
        """`in_memory=False` keeps the data in `db_path`, so a stopped instance can start again with it."""
        self.port = port or free_port()
        self.in_memory = in_memory
        self.db_path = db_path
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = STATE_DIR / f"dynamodb-local-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> "DynamoDBLocal":
        if port_taken("127.0.0.1", self.port):
            raise PortInUseError("DynamoDB Local", "127.0.0.1", self.port)
        stored = {"db_path": self.db_path} if self.db_path is not None else {}
        command = dynamodb_local_command(self.port, in_memory=self.in_memory, **stored)
        with self.log_path.open("wb") as output:  # the child keeps its own copy
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=STATE_DIR)
        try:
            wait_for_dynamodb(self.endpoint, timeout=timeout, process=self.process)
        except (RuntimeError, TimeoutError) as exc:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"{exc}\n--- DynamoDB Local said ---\n{tail}") from exc
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log_path.unlink(missing_ok=True)


def start_dynamodb_local(port: int = 0, in_memory: bool = True) -> DynamoDBLocal:
    """Start DynamoDB Local (port 0: a free port) and wait until it answers; call `.stop()` when done."""
    return DynamoDBLocal(port, in_memory=in_memory).start()


class StaticJwks(jwt.PyJWKClient):
    """An issuer's JWKS without HTTP (for unit tests)."""

    def __init__(self, issuer: LocalIssuer):
        super().__init__(issuer.jwks_url)
        self.issuer = issuer

    def fetch_data(self) -> Any:
        return self.issuer.jwks()
