"""A client that reads slowly cannot hold the export past its deadline.

Behind the Web Adapter, a slow client holds back uvicorn's writes (`send()` waits for the socket to drain).
The export checks its deadline after each batch it hands over, ending with `_end` and a cursor while there is
time; and every write must be done by the cut-off just before the deadline, or the connection is dropped
(no final line: the client knows the export is incomplete) so the invocation ends in time.
"""

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from core.services.tasks import ExportPage
from core.wiring import build_services
from local.issuer import LocalIssuer
from streaming.app import create_app, logger, with_connection_drop
from streaming.export import FLUSH_BYTES, Budget, ExportStream
from streaming.framing import FRAMINGS
from tests.support import ALICE, Backend, export_settings

HANG_GUARD_SECONDS = 60  # only so that a broken build fails instead of hanging; no assertion is about time


class Dropped(logging.Handler):
    """Set when the export app logs that it dropped a response at the cut-off; keeps that log record."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()
        self.record: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        if line["message"].startswith("export dropped at the cut-off"):
            self.record = line
            self.event.set()


@pytest.fixture
def served(backend: Backend) -> Iterator[tuple[int, Dropped]]:
    """The export app (as run.sh serves it: uvicorn, with the connection-drop hook) on a loopback port whose
    connections have small send buffers, and a watch on its log for dropped responses."""
    # The deadline is 8 s after the request arrives (no Lambda context says otherwise), the cut-off 2 s before it
    settings = export_settings(backend.settings.jwks_url, export_timeout_seconds=8.0, export_safety_seconds=4.0)
    app = with_connection_drop(create_app(settings, build_services(settings, backend.dynamodb, lambda: backend.s3)))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # accepted connections inherit it
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    config = uvicorn.Config(app, lifespan="off", log_level="critical", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    dropped = Dropped()
    dropped.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(dropped)
    try:
        yield listener.getsockname()[1], dropped
    finally:
        logger._logger.removeHandler(dropped)
        server.should_exit = True
        thread.join(HANG_GUARD_SECONDS)
        listener.close()


def test_a_client_reading_a_byte_at_a_time_is_dropped_before_the_deadline(
    served: tuple[int, Dropped], backend: Backend, issuer: LocalIssuer
) -> None:
    port, dropped = served
    backend.load_tasks(ALICE, [{"description": "x" * 2000}] * 200)  # ~450 KB: far more than the buffers hold
    context = json.dumps({"request_id": "slow-1"})  # the Web Adapter's header, here without a deadline
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(HANG_GUARD_SECONDS)
    client.connect(("127.0.0.1", port))
    client.sendall(
        (
            "GET /tasks/export HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {issuer.token(ALICE)}\r\nx-amzn-lambda-context: {context}\r\n\r\n"
        ).encode()
    )

    # When the client takes a byte now and then, until the server gives up on it
    received = bytearray()
    give_up = time.monotonic() + HANG_GUARD_SECONDS
    with client:
        while not dropped.event.wait(0.5) and time.monotonic() < give_up:
            received += client.recv(1)
        # Then the server gives up on it, and the connection is gone: what was still in flight ends with no
        # final line, so the client knows the export is incomplete
        assert dropped.event.is_set(), "the server never gave up: a slow client holds the export open"
        try:
            while chunk := client.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass

    # And it did so before the deadline, by its own clock
    assert dropped.record["seconds_to_deadline"] > 0
    assert dropped.record["correlation_id"] == "slow-1"
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b'"_end"' not in received and b'"_error"' not in received


class SlowWrites:
    """An epoch clock that moves on only when the test says a batch took that long to write."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_slow_writes_end_the_export_cleanly_with_a_cursor_after_the_last_task_written() -> None:
    # Given one page of 40 tasks of 4 KiB (a batch goes to the server every 8 or so), 60 s to the deadline and a
    # 25 s margin
    clock = SlowWrites()
    rows = [({"taskId": f"t{n:02}", "description": "x" * 4096}, {"n": str(n)}) for n in range(40)]
    budget = Budget(clock, deadline=clock.now + 60, safety_seconds=25, max_bytes=10**9)
    stream = ExportStream(
        ExportPage(rows, last_key=None), iter(()), lambda at: f"after-{at['n']}", FRAMINGS["ndjson"], budget, {}
    )

    # When every batch takes 20 s to reach the client
    body = b""
    for chunk in stream.chunks():
        body += chunk
        clock.now += 20

    # Then the export stops after the second batch (35 s left, then 15 s: under the margin) with its final line
    *tasks, last = [json.loads(line) for line in body.splitlines()]
    assert len(body) - len(body.splitlines()[-1]) > FLUSH_BYTES  # more than one batch was written
    assert [task["taskId"] for task in tasks] == [f"t{n:02}" for n in range(len(tasks))]
    assert len(tasks) < 40
    assert last == {"_end": {"count": len(tasks), "nextCursor": f"after-{len(tasks) - 1}"}}


def test_fast_writes_export_everything() -> None:
    # The same stream, its batches written at once: every task, then `_end` with no cursor
    clock = SlowWrites()
    rows = [({"taskId": f"t{n:02}", "description": "x" * 4096}, {"n": str(n)}) for n in range(40)]
    budget = Budget(clock, deadline=clock.now + 60, safety_seconds=25, max_bytes=10**9)
    stream = ExportStream(
        ExportPage(rows, last_key=None), iter(()), lambda at: f"after-{at['n']}", FRAMINGS["ndjson"], budget, {}
    )

    *tasks, last = [json.loads(line) for line in b"".join(stream.chunks()).splitlines()]

    assert [task["taskId"] for task in tasks] == [f"t{n:02}" for n in range(40)]
    assert last == {"_end": {"count": 40, "nextCursor": None}}
