"""One execution environment of a function: the child process `local.workers.FunctionPool` starts.

    python -u local/worker_main.py REQUEST_FD RESPONSE_FD LIFELINE_FD

Like the Lambda Python runtime it imports the handler (`_HANDLER`, from `LAMBDA_TASK_ROOT`) once, then
serves one invocation at a time and keeps its module state between them. Messages on the two pipes
are length-prefixed JSON (see `write_message`); stdout and stderr are the function's log, which the
parent labels with the function name and request id. The lifeline pipe is never written: when it
closes, the parent is gone and the environment ends with it (no orphan, even if the parent was killed).
Ctrl-C reaches the whole process group: the worker ignores it and is stopped by its parent.
"""

import importlib
import json
import os
import signal
import struct
import sys
import threading
import time
import traceback
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

_HEADER = struct.Struct(">I")


def write_message(stream: IO[bytes], message: Any) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message, or None when the other side has closed the pipe (or died mid-message)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return json.loads(data) if len(data) == size else None


def error_body(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """An error as the Lambda runtime reports it: errorMessage, errorType, stackTrace."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def runtime_json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # the Python runtime's marshaller turns Decimal into a number
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _watch_parent(lifeline_fd: int) -> None:
    with os.fdopen(lifeline_fd, "rb") as lifeline:
        lifeline.read()  # returns only at EOF: the parent closed it or died
    os._exit(1)


def _load_handler(handler: str) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _InitError(exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise _InitError(None, "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    return function


class _InitError(Exception):
    def __init__(self, cause: BaseException | None, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.__traceback__ = cause.__traceback__ if cause is not None else None


def _invoke(handler: Any, message: dict[str, Any]) -> dict[str, Any]:
    from local.runtime import LambdaContext  # after sys.path is set up

    environ = os.environ
    context = LambdaContext(
        environ["AWS_LAMBDA_FUNCTION_NAME"],
        message["arn"],
        memory_limit_in_mb=int(environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
        timeout_seconds=message["deadline_ms"] / 1000 - time.time(),
        aws_request_id=message["request_id"],
    )
    try:
        result = handler(message["event"], context)
    except Exception as exc:
        body = error_body(exc)
        print(f"[ERROR] {body['errorType']}: {body['errorMessage']}", file=sys.stderr)
        traceback.print_exc()
        return {"error": body}
    try:
        return {"result": json.loads(json.dumps(result, default=runtime_json_default))}
    except (TypeError, ValueError) as exc:
        return {
            "error": error_body(exc, "Runtime.MarshalError") | {"errorMessage": f"Unable to marshal response: {exc}"}
        }


def main(argv: list[str]) -> int:
    request_fd, response_fd, lifeline_fd = (int(value) for value in argv[1:4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(lifeline_fd,), name="lifeline", daemon=True).start()
    sys.path[0] = os.environ["LAMBDA_TASK_ROOT"]  # the code first, as /var/task in Lambda
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # for local.runtime.LambdaContext
    with os.fdopen(request_fd, "rb") as requests, os.fdopen(response_fd, "wb") as responses:
        began = time.monotonic()
        try:
            handler = _load_handler(os.environ["_HANDLER"])
        except _InitError as error:
            print(f"[ERROR] {error.error_type}: {error}", file=sys.stderr)
            write_message(responses, {"init_error": error_body(error, error.error_type)})
            return 1
        write_message(responses, {"ready": True, "init_ms": (time.monotonic() - began) * 1000})
        while (message := read_message(requests)) is not None:
            write_message(responses, _invoke(handler, message))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
