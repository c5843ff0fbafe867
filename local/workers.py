"""Lambda execution environments as local processes: one `FunctionPool` per function.

Each worker is AWS's own Python runtime, `python -m awslambdaric <handler>` (the Lambda Runtime Interface
Client), polling a Lambda Runtime API that the pool serves for it on a loopback port. Like a warm Lambda
environment it imports the handler once and serves one invocation at a time, keeping its module state.
An invocation goes to an idle worker, or starts a new one (a cold start, logged with its init duration)
while the pool is below its concurrency limit (the function's ReservedConcurrentExecutions, else 4).
Past the limit it waits in a bounded queue; a full queue, or a wait longer than `queue_timeout`, is a
throttle.

An invocation that runs past the function's Timeout is stopped: the worker is killed (`Task timed out
after 10.00 seconds` in the log) and the next invocation gets a new one. A worker that dies mid-
invocation fails that invocation with Lambda's `Runtime.ExitError`, never a hang. The log shows each
worker's output labelled with the function name and request id, plus Lambda's START/END/REPORT lines.

Workers run in their own session, so a Ctrl-C at the terminal reaches only the parent, which stops them.
When the parent dies, a worker exits at its next call to the Runtime API, which is gone with it: at once
when idle, else when its invocation ends.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from werkzeug.wrappers import Request

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, specs
from local.events import Response
from local.server import HttpServer
from local.specs import FunctionSpec
from local.template import Template

DEFAULT_CONCURRENCY = 4  # no ReservedConcurrentExecutions: the account's pool, scaled to a small machine
DEFAULT_QUEUE_BOUND = 32
INIT_TIMEOUT_SECONDS = 10  # Lambda's limit for the init phase
MAX_INVOKE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (request and response)
LAMBDA_PYTHON_ENVIRONMENT = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.13", "LANG": "en_US.UTF-8", "TZ": ":UTC"}


class InvocationFailed(Exception):
    """The invocation did not return a result; `error` is what Lambda's Invoke would report."""

    def __init__(self, error_type: str, error_message: str, *, request_id: str = "", stack_trace: Any = None):
        super().__init__(f"{error_type}: {error_message}")
        self.request_id = request_id
        self.error = {"errorMessage": error_message, "errorType": error_type}
        if stack_trace:
            self.error["stackTrace"] = stack_trace

    @property
    def error_type(self) -> str:
        return str(self.error["errorType"])

    @property
    def error_message(self) -> str:
        return str(self.error["errorMessage"])


class HandlerError(InvocationFailed):
    """The handler raised (or its result could not be marshalled, or its module failed to import)."""


class InvocationTimedOut(InvocationFailed):
    """The invocation ran past the function's Timeout; its worker was killed."""


class Throttled(InvocationFailed):
    """The function was at its concurrency limit and the queue was full (Lambda's TooManyRequestsException)."""


class WorkerCrashed(InvocationFailed):
    """The worker process died during the invocation (killed from outside, or the interpreter exited)."""


class _Worker:
    """One execution environment: an awslambdaric process, and the Runtime API it polls, served here.

    The pool hands it one invocation at a time (`run`); its calls to the Runtime API become outcomes:
    `ready` (its first `next`: the init phase is over), `response` or `error` (init or invocation), and
    `exit` when the process has ended.
    """

    def __init__(self, pool: "FunctionPool", serial: int):
        self.pool = pool
        self.request_id: str | None = None
        self._started = time.monotonic()
        self._initialised = False
        self._invocations: queue.Queue[Response | None] = queue.Queue()
        self._outcomes: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._api = HttpServer(self._runtime_api, name=f"{pool.name}-runtime-api-{serial}").start()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", pool.handler],
                env=pool.worker_environment(runtime_api=f"{self._api.host}:{self._api.port}"),
                cwd=pool.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the parent only, which stops its workers
            )
        except BaseException:
            self._api.stop()
            raise
        self._pump = threading.Thread(target=self._pump_log, name=f"{pool.name}-log-{serial}", daemon=True)
        self._pump.start()

    def _runtime_api(self, request: Request) -> Response:
        """The Lambda Runtime API calls awslambdaric makes: invocation/next, invocation/{id}/response or
        invocation/{id}/error, and init/error."""
        call = request.path.removeprefix("/2018-06-01/runtime/")
        if request.method == "GET" and call == "invocation/next":
            if not self._initialised:  # its first call ends the init phase
                self._initialised = True
                self._outcomes.put(("ready", b""))
            return self._invocations.get() or Response(status=410)  # None: the worker is being killed
        if request.method == "POST" and call.endswith(("/response", "/error")):  # invocation/{id}/..., init/error
            self._outcomes.put((call.rsplit("/", 1)[1], request.get_data()))
            return Response(status=202)
        return Response(status=404)

    def wait_ready(self) -> float:
        """Wait for the init phase; its duration in ms, or HandlerError (init failed) / WorkerCrashed."""
        kind, body = self._receive(INIT_TIMEOUT_SECONDS)
        if kind == "ready":
            return (time.monotonic() - self._started) * 1000
        self.kill()
        if kind == "error":
            raise _handler_error(body)
        raise WorkerCrashed("Runtime.ExitError", f"Error: Runtime exited during init: {self._exit_reason()}")

    def run(self, request_id: str, event: bytes, timeout: float) -> tuple[str, bytes]:
        """Hand over one invocation; its outcome, `response` or `error` with the runtime's body, or
        TimeoutError / WorkerCrashed."""
        self._invocations.put(
            Response(
                event,
                200,
                [
                    ("Content-Type", "application/json"),  # awslambdaric decodes the event by it (and crashes without)
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(int((time.time() + timeout) * 1000))),
                    ("Lambda-Runtime-Invoked-Function-Arn", self.pool.arn),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
                ],
            )
        )
        kind, body = self._receive(timeout)
        if kind == "exit":
            raise self._crashed(request_id)
        return kind, body

    def _receive(self, timeout: float) -> tuple[str, bytes]:
        try:
            return self._outcomes.get(timeout=max(timeout, 0))
        except queue.Empty:
            raise TimeoutError from None

    def _crashed(self, request_id: str) -> WorkerCrashed:
        reason = self._exit_reason()
        return WorkerCrashed(
            "Runtime.ExitError",
            f"RequestId: {request_id} Error: Runtime exited with error: {reason}",
            request_id=request_id,
        )

    def _exit_reason(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        return f"signal: {_signal_name(-code)}" if code < 0 else f"exit status {code}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def max_memory_mb(self) -> int | None:
        """The worker's peak resident memory (Linux), for the REPORT line's Max Memory Used."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._pump.join(timeout=5)

    def _pump_log(self) -> None:
        """The worker's output, line by line, to the pool's log; its end is the process's (the API stops)."""
        stdout = self.process.stdout
        if stdout is not None:
            with stdout:
                for raw in stdout:  # the runtime joins the lines of an error with "\r"
                    for line in raw.decode("utf-8", "replace").rstrip("\r\n").split("\r"):
                        self.pool.log_line(line, self.request_id or "INIT")
        self._invocations.put(None)
        self._api.stop()
        self._outcomes.put(("exit", b""))


def _handler_error(body: bytes, request_id: str = "") -> HandlerError:
    """The error the runtime posted (errorType, errorMessage, stackTrace), as Invoke reports it."""
    error = json.loads(body)
    return HandlerError(
        error["errorType"], error["errorMessage"], request_id=request_id, stack_trace=error.get("stackTrace")
    )


_SIGNAL_NAMES = {  # as Lambda's runtime API words them (Go's names)
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
}


def _signal_name(number: int) -> str:
    try:
        return _SIGNAL_NAMES.get(signal.Signals(number), signal.Signals(number).name)
    except ValueError:
        return str(number)


class FunctionPool:
    """The execution environments of one function: `invoke(event)` as Lambda's synchronous Invoke."""

    def __init__(
        self,
        name: str,
        handler: str,
        code_dir: Path,
        environment: Mapping[str, str],
        *,
        timeout_seconds: float = 3,
        memory_mb: int = 128,
        concurrency: int = DEFAULT_CONCURRENCY,
        queue_bound: int = DEFAULT_QUEUE_BOUND,
        queue_timeout: float | None = None,
        log: TextIO | None = None,
    ):
        if concurrency < 0 or queue_bound < 0:
            raise ValueError("concurrency and queue_bound must not be negative")
        self.name = name
        self.handler = handler
        self.code_dir = Path(code_dir).resolve()  # the child runs there: a relative path would not resolve twice
        self.environment = dict(environment)
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.concurrency = concurrency
        self.queue_bound = queue_bound
        self.queue_timeout = timeout_seconds if queue_timeout is None else queue_timeout
        self.arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}"
        self.cold_starts: list[float] = []  # init durations in ms, one per worker started
        self._log = log
        self._log_lock = threading.Lock()
        self._condition = threading.Condition()
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._starting = 0
        self._waiting = 0
        self._serial = 0
        self._stopped = False

    @classmethod
    def from_template(
        cls, template: Template, logical_id: str, environment: Mapping[str, str], code_dir: Path, **options: Any
    ) -> "FunctionPool":
        """The pool of a template function: its name, handler, Timeout, MemorySize and reserved concurrency."""
        spec: FunctionSpec = specs.function(template, logical_id)
        reserved = template.resolve(spec.properties.get("ReservedConcurrentExecutions"), logical_id)
        given = isinstance(reserved, int | str) and str(reserved).isdigit()  # AWS::NoValue or "": none reserved
        options.setdefault("concurrency", int(reserved) if given else DEFAULT_CONCURRENCY)
        return cls(
            spec.name,
            spec.handler,
            code_dir,
            environment,
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            **options,
        )

    # -- invoking

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run the handler on `event` in a worker and return its result (JSON round-tripped, as Lambda does)."""
        payload = json.dumps(event).encode()
        if len(payload) > MAX_INVOKE_BYTES:
            raise InvocationFailed("RequestTooLargeException", f"Request must be smaller than {MAX_INVOKE_BYTES} bytes")
        worker, init_ms = self._acquire()
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        worker.request_id = request_id
        self.log_line(f"START RequestId: {request_id} Version: $LATEST", request_id)
        try:
            outcome, body = worker.run(request_id, payload, self.timeout_seconds)
        except TimeoutError:
            elapsed = time.monotonic() - started
            self._discard(worker)
            self.log_line(f"{_now()} {request_id} Task timed out after {elapsed:.2f} seconds", request_id)
            self._report(request_id, elapsed, worker, init_ms)
            raise InvocationTimedOut(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {elapsed:.2f} seconds",
                request_id=request_id,
            ) from None
        except WorkerCrashed as crash:
            self._discard(worker)
            self.log_line(f"{_now()} {request_id} {crash.error_message}", request_id)
            self._report(request_id, time.monotonic() - started, worker, init_ms)
            raise
        self._report(request_id, time.monotonic() - started, worker, init_ms)
        worker.request_id = None
        self._release(worker)
        if outcome == "error":
            raise _handler_error(body, request_id)
        if len(body) > MAX_INVOKE_BYTES:
            raise HandlerError(
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                f"({MAX_INVOKE_BYTES} bytes).",
                request_id=request_id,
            )
        return json.loads(body)

    # -- the pool

    def _acquire(self) -> tuple[_Worker, float | None]:
        """An idle worker (init None), or a new one with its init duration; Throttled past limit and queue."""
        deadline = time.monotonic() + self.queue_timeout
        queued = False
        with self._condition:
            try:
                while True:
                    if self._stopped:
                        raise WorkerCrashed("Runtime.ExitError", f"the pool of {self.name} is stopped")
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.alive:
                            return worker, None
                        self._workers.discard(worker)
                        worker.kill()
                    if len(self._workers) + self._starting < self.concurrency:
                        self._starting += 1
                        self._serial += 1
                        serial = self._serial
                        break
                    remaining = deadline - time.monotonic()
                    if (not queued and self._waiting >= self.queue_bound) or remaining <= 0:
                        raise Throttled(
                            "TooManyRequestsException",
                            f"Rate Exceeded. {self.name} is at its concurrency limit of {self.concurrency}",
                        )
                    if not queued:
                        queued = True
                        self._waiting += 1
                    self._condition.wait(remaining)
            finally:
                if queued:
                    self._waiting -= 1
        return self._cold_start(serial)

    def _cold_start(self, serial: int) -> tuple[_Worker, float]:
        worker: _Worker | None = None
        try:
            worker = _Worker(self, serial)
            init_ms = worker.wait_ready()
        except TimeoutError:
            if worker is not None:
                worker.kill()
            raise WorkerCrashed("Sandbox.Timedout", f"INIT took longer than {INIT_TIMEOUT_SECONDS} seconds") from None
        finally:
            with self._condition:
                self._starting -= 1
                if worker is not None and worker.alive and not self._stopped:
                    self._workers.add(worker)
                self._condition.notify()
        if self._stopped:
            worker.kill()
            raise WorkerCrashed("Runtime.ExitError", f"the pool of {self.name} is stopped")
        self.cold_starts.append(init_ms)
        self.log_line(f"cold start: a new execution environment (worker {serial}, pid {worker.process.pid})", "INIT")
        return worker, init_ms

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            if self._stopped:
                worker.kill()
            elif worker in self._workers:
                self._idle.append(worker)
            self._condition.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._condition:
            self._workers.discard(worker)
            self._condition.notify()

    @property
    def size(self) -> int:
        """How many execution environments are alive."""
        with self._condition:
            return len(self._workers)

    def worker_pids(self) -> list[int]:
        with self._condition:
            return sorted(worker.process.pid for worker in self._workers)

    def stop(self) -> None:
        """Kill every worker (no orphan left) and refuse new invocations."""
        with self._condition:
            self._stopped = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
            self._condition.notify_all()
        for worker in workers:
            worker.kill()

    # -- environment and logs

    def worker_environment(self, runtime_api: str) -> dict[str, str]:
        """What Lambda sets in an execution environment, then the function's own variables."""
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            **LAMBDA_PYTHON_ENVIRONMENT,
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "_HANDLER": self.handler,
            **self.environment,
        }

    def log_line(self, line: str, request_id: str) -> None:
        """One log line, labelled as CloudWatch would group it: function name, then request id (or INIT)."""
        with self._log_lock:
            print(f"[{self.name} {request_id}] {line}", file=self._log or sys.stdout, flush=True)

    def _report(self, request_id: str, elapsed: float, worker: _Worker, init_ms: float | None) -> None:
        duration = elapsed * 1000
        fields = [
            f"Duration: {duration:.2f} ms",
            f"Billed Duration: {int(duration) + 1} ms",
            f"Memory Size: {self.memory_mb} MB",
        ]
        memory = worker.max_memory_mb()
        if memory is not None:
            fields.append(f"Max Memory Used: {memory} MB")
        if init_ms is not None:
            fields.append(f"Init Duration: {init_ms:.2f} ms")
        self.log_line(f"END RequestId: {request_id}", request_id)
        self.log_line(f"REPORT RequestId: {request_id}\t" + "\t".join(fields), request_id)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
