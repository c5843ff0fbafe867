"""Loopback servers: a threaded HTTP/1.1 server for `HttpRequest -> HttpResponse` apps, and uvicorn for ASGI apps.

Every server binds its port when it is constructed, in the caller's thread, so a port that is taken
fails at once with `PortInUseError` (naming what wanted it) instead of in a background thread.
"""

import asyncio
import contextlib
import errno
import io
import logging
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import unquote_to_bytes

import uvicorn

from local.events import HttpRequest, HttpResponse

App = Callable[[HttpRequest], HttpResponse]
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class PortInUseError(OSError):
    def __init__(self, what: str, host: str, port: int):
        hint = " (on macOS, the AirPlay Receiver listens on 5000)" if sys.platform == "darwin" and port == 5000 else ""
        super().__init__(errno.EADDRINUSE, f"{what}: {host}:{port} is already in use{hint}")
        self.what = what
        self.host = host
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


class HttpServer:
    """A loopback HTTP/1.1 server (a thread per connection) that hands each request to `app`.

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
        max_body: int = MAX_REQUEST_BYTES,
    ):
        self.name = name
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(name, host, port) from exc
            raise
        self._server.app = app
        self._server.label = name
        self._server.access_log = access_log
        self._server.max_body = max_body
        self._thread: threading.Thread | None = None

    @property
    def app(self) -> App | None:
        return self._server.app

    @app.setter
    def app(self, app: App) -> None:
        self._server.app = app

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
        if self._server.app is None:
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
        self._server.close_connections()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: App | None
    label: str
    access_log: TextIO | None
    max_body: int

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close open keep-alive connections, so a stopped server leaves no thread waiting on a client."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "local-stack"
    timeout = 120  # seconds an idle keep-alive connection is kept
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method goes to the app, which decides what is routed
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            response = HttpResponse.json(413, {"message": "Request Entity Too Large"})
            self.close_connection = True
        else:
            request = HttpRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            try:
                response = self.server.app(request) if self.server.app else HttpResponse(503)
            except Exception:
                traceback.print_exc()  # a bug in the emulator: say so, answer like API Gateway would
                response = HttpResponse.json(500, {"message": "Internal Server Error"})
        self._write(response)
        if self.server.access_log is not None:
            elapsed = (time.monotonic() - started) * 1000
            print(
                f'{self.server.label} "{self.command} {self.path}" {response.status} '
                f"{len(response.body)} {elapsed:.0f}ms",
                file=self.server.access_log,
                flush=True,
            )

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked), or None when it is over the size limit."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                length = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > self.server.max_body:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length > self.server.max_body:
            return None
        return self.rfile.read(length) if length else b""

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        if response.status in (204, 304) or 100 <= response.status < 200:
            self.end_headers()  # no body, and no Content-Length
            return
        if self.command == "HEAD":  # the length of what a GET would send, when the app says it
            self.send_header("content-length", response.header("content-length", str(len(response.body))) or "0")
            self.end_headers()
            return
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # BaseHTTPRequestHandler's signature
        """Access lines are written by _dispatch (to access_log); the default stderr line is noise."""


def wsgi_app(
    app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
    *,
    extra_environ: Callable[[HttpRequest, dict[str, Any]], None] | None = None,
) -> App:
    """A WSGI application as an `HttpRequest -> HttpResponse` app (so it gets keep-alive connections).

    `extra_environ(request, environ)` may add or change environ entries before each call.
    """

    def call(request: HttpRequest) -> HttpResponse:
        path, _, query = request.target.partition("?")
        host, _, port = (request.header("host") or "localhost:80").partition(":")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": request.target,
            "RAW_URI": request.target,
            "SERVER_NAME": host,
            "SERVER_PORT": port or "80",
            "SERVER_PROTOCOL": request.protocol,
            "REMOTE_ADDR": request.source_ip,
            "CONTENT_LENGTH": str(len(request.body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            if "_" in name:  # as WSGI servers do: X_Foo must not pass for X-Foo
                continue
            key = name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key.startswith("HTTP_") and key in environ else value
        if extra_environ is not None:
            extra_environ(request, environ)
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return HttpResponse(status, list(headers), b"".join(chunks))

    return call


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
        self.name = name
        self.app = app
        self.access_log = access_log
        self._socket = listen(host, port, name)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 15) -> "AsgiServer":
        if self.app is None:
            raise RuntimeError(f"{self.name}: no app to serve")
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the process's logging configuration alone
            log_level="info" if self.access_log else "warning",
            access_log=self.access_log is not None,
            lifespan="auto",
            timeout_graceful_shutdown=3,
        )
        if self.access_log is not None:
            access = logging.getLogger("uvicorn.access")
            if not access.handlers:
                handler = logging.StreamHandler(self.access_log)
                handler.setFormatter(logging.Formatter(f"{self.name} %(message)s"))
                access.addHandler(handler)
                access.propagate = False
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(self._server,), name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:  # uvicorn has no ready callback: watch its flag
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name}: uvicorn stopped during startup (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _run(self, server: uvicorn.Server) -> None:
        asyncio.run(server.serve(sockets=[self._socket]))

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._socket.close()
