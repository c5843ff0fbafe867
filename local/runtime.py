"""The Lambda runtime shim: a handler imported as the Python runtime does, invoked with a LambdaContext."""

import importlib
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from local import LOCAL_ACCOUNT_ID, LOCAL_REGION, REPO_ROOT
from local.specs import FunctionSpec

SRC_DIR = REPO_ROOT / "src"
MAX_INVOKE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (request and response)

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """What the Python runtime passes as `context` (awslambdaric's LambdaContext, same attributes)."""

    def __init__(
        self,
        function_name: str,
        invoked_function_arn: str,
        *,
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3,
        aws_request_id: str | None = None,
        function_version: str = "$LATEST",
    ):
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = str(memory_limit_in_mb)  # a string in the real runtime too
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = int(time.time() * 1000 + timeout_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message: str) -> None:
        print(message, end="", flush=True)  # the runtime's context.log writes to stdout

    def __repr__(self) -> str:
        return f"LambdaContext({self.function_name!r}, request {self.aws_request_id})"


# --- functions ----------------------------------------------------------------------------------------


class InvocationError(Exception):
    """The function raised, timed out or returned something Lambda cannot serialise."""


def load_handler(handler: str, src_dir: Path = SRC_DIR) -> Handler:
    """Import `package.module.function` the way the Python runtime does, with `src_dir` as the code root."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {handler!r} is not module.function")
    if str(src_dir) not in sys.path:
        sys.path.insert(0, str(src_dir))
    function = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise TypeError(f"handler {handler!r} is not callable")
    return function  # type: ignore[no-any-return]


class LambdaFunction:
    """One warm execution environment of a function: one invocation at a time, as in Lambda.

    The handler's module state (Powertools resolver and its `current_event`, logger keys, metrics) is
    per environment and not thread-safe, so concurrent requests queue here instead of racing. Functions
    loaded into one process also share Powertools' class-level state (the metric set), so the stack
    gives all of them one `lock`: the process is one execution environment for all its functions.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        arn: str | None = None,
        timeout_seconds: float = 3,
        memory_mb: int = 128,
        lock: threading.Lock | None = None,
    ):
        self.name = name
        self.handler = handler
        self.arn = arn or f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}"
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._lock = lock or threading.Lock()

    @classmethod
    def from_spec(
        cls, spec: FunctionSpec, src_dir: Path = SRC_DIR, *, lock: threading.Lock | None = None
    ) -> "LambdaFunction":
        return cls(
            spec.name,
            load_handler(spec.handler, src_dir),
            arn=spec.arn,
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            lock=lock,
        )

    def invoke(self, event: Mapping[str, Any]) -> Any:
        payload = json.dumps(event)
        if len(payload) > MAX_INVOKE_BYTES:
            raise InvocationError(f"the event is {len(payload)} bytes, over Lambda's {MAX_INVOKE_BYTES}")
        with self._lock:
            context = LambdaContext(
                self.name, self.arn, memory_limit_in_mb=self.memory_mb, timeout_seconds=self.timeout_seconds
            )
            started = time.monotonic()
            try:
                result = self.handler(json.loads(payload), context)
            except Exception as exc:
                raise InvocationError(f"{self.name} raised {type(exc).__name__}\n{traceback.format_exc()}") from exc
            elapsed = time.monotonic() - started
        if elapsed > self.timeout_seconds:
            raise InvocationError(
                f"{self.name} took {elapsed:.1f} s, over its Timeout of {self.timeout_seconds} s: "
                "Lambda would have stopped it (Task timed out)"
            )
        try:
            serialised = json.dumps(result, default=_runtime_json_default)
        except (TypeError, ValueError) as exc:
            raise InvocationError(f"{self.name} returned a value Lambda cannot serialise: {exc}") from exc
        if len(serialised) > MAX_INVOKE_BYTES:
            raise InvocationError(f"{self.name} returned {len(serialised)} bytes, over Lambda's {MAX_INVOKE_BYTES}")
        return json.loads(serialised)


def _runtime_json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # the Python runtime's marshaller turns Decimal into a number
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
