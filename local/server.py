"""Loopback servers: werkzeug's threaded WSGI server, and uvicorn for ASGI apps.

Every server binds its port when it is constructed, in the caller's thread, so a port that is taken
fails at once with `PortInUseError` (naming what wanted it) instead of in a background thread.
"""

import asyncio
import errno
import logging
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import uvicorn
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from local.events import Response, json_response

App = Callable[[Request], Response]
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class PortInUseError(OSError):
    def __init__(self, what: str, host: str, port: int):
        hint = " (on macOS, the AirPlay Receiver listens on 5000)" if sys.platform == "darwin" and port == 5000 else ""
        super().__init__(errno.EADDRINUSE, f"{what}: {host}:{port} is already in use{hint}")
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket on host:port (0: a free port); PortInUseError names `what` when it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(what, host, port) from exc
        raise
    return sock


class _Handler(MotoRequestHandler):
    """werkzeug's handler with moto's header handling (S3 metadata names keep their underscores), no log."""

    def log_request(self, *args: Any) -> None:  # HttpServer writes the access log
        pass


class HttpServer:
    """A loopback HTTP/1.1 server, a thread per connection, for a werkzeug `Request -> Response` app.

    `app` may be given later (before `start`), so the port can be bound before the app exists.
    """

    def __init__(
        self,
        app: App | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "http",
        access_log: TextIO | None = None,
    ):
        self.name, self.app, self.access_log = name, app, access_log
        sock = listen(host, port, name)
        try:
            self._server = make_server(
                host, port, self._serve, threaded=True, request_handler=_Handler, fd=sock.fileno()
            )
        finally:
            sock.close()  # werkzeug holds its own copy
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "HttpServer":
        if self.app is None:
            raise RuntimeError(f"{self.name}: no app to serve")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        try:
            response = self.app(request) if self.app else Response(status=503)
        except Exception:
            traceback.print_exc()  # a bug in the emulator: say so, answer like API Gateway would
            response = json_response(500, {"message": "Internal Server Error"})
        if self.access_log is not None:
            took = f"{(time.monotonic() - started) * 1000:.0f}ms"
            size = len(response.get_data())
            line = f'{self.name} "{request.method} {environ["REQUEST_URI"]}" {response.status_code} {size} {took}'
            print(line, file=self.access_log, flush=True)
        return response(environ, start_response)  # for HEAD: no body, the GET's Content-Length


class AsgiServer:
    """An ASGI app under uvicorn in a background thread, on a socket bound at construction."""

    def __init__(
        self,
        app: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "asgi",
        access_log: TextIO | None = None,
    ):
        self.name, self.app, self.access_log = name, app, access_log
        self._socket = listen(host, port, name)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, *, timeout: float = 15) -> "AsgiServer":
        if self.app is None:
            raise RuntimeError(f"{self.name}: no app to serve")
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the process's logging configuration alone
            log_level="info" if self.access_log else "warning",
            access_log=self.access_log is not None,
            timeout_graceful_shutdown=3,
        )
        access = logging.getLogger("uvicorn.access")
        if self.access_log is not None and not access.handlers:
            handler = logging.StreamHandler(self.access_log)
            handler.setFormatter(logging.Formatter(f"{self.name} %(message)s"))
            access.addHandler(handler)
            access.propagate = False
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[self._socket])), name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:  # uvicorn has no ready callback: watch its flag
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name}: uvicorn stopped during startup (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        self._server = self._thread = None
        self._socket.close()
