"""The Lambda runtime's `context` object, as each worker (local/worker_main.py) passes it to the handler."""

import time
import uuid
from datetime import UTC, datetime


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
