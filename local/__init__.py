"""The no-Docker local stack behind `make run`: never deployed.

Modules:
    template, specs   template.yaml as data (only the intrinsic functions it uses)
    events            HTTP requests to payload 2.0 events, and function results back to HTTP
    workers           each function's execution environments: AWS's Python runtime (awslambdaric) in
                      worker processes, each polling a Lambda Runtime API served here
    streams           DynamoDB stream records to functions (event source mappings: filters, batches, retries)
    docs, s3_cors     the API docs page; the buckets' CORS rules on S3 responses
    authorizer        the HTTP API JWT authorizer
    gateway           the HTTP API emulator (routes from the template) and the function URL emulator
    server            loopback servers (werkzeug for the emulators and moto, uvicorn for the streaming app)
    aws               the AWS stand-in (moto) with the template's tables and buckets
    roles             each function's role as the SAM transform writes it, resolved to the local ARNs
    iam, iam_gate     IAM policy evaluation; every request of a function authorized with its role
    dynamodb_local    DynamoDB Local, from npm, run with java
    s3_post           presigned POST policies enforced as S3 does (moto accepts any upload)
    notifications     S3 Object Created events to the functions of the template's EventBridge rules (moto's
                      pattern matcher); the retries and dead-letter queues that streams shares
    issuer            a local JWT issuer and its JWKS endpoint
    stack             LocalStack: everything above, in this process, on loopback ports
    seed              realistic demo tasks through the public API
"""

import os
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = REPO_ROOT / ".local"  # the signing key, the cursor secret, DynamoDB Local's data, the running stack
LOCAL_STACK_NAME = "serverless-tasks-local"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"


def secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of `path`, made and written (mode 0600) on first use; when processes race, the first wins."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(make())
        try:
            os.link(temporary, path)  # never replaces a file another process wrote meanwhile
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_bytes()
