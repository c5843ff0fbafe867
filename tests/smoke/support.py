"""The smoke suite's helpers: what it runs against, and a client for one entry point."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class Target:
    api_url: str
    function_url: str
    export_url: str
    token: str | None
    settle_uploads: Callable[[], None]  # returns once every upload so far has been processed, or may have been
    upload_wait_seconds: float  # how long an attachment may take to become available after settle_uploads()


class Client:
    """Calls one entry point as the smoke user."""

    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=30, **kwargs)


def wait_until_available(client: Client, path: str, target: Target) -> dict[str, Any]:
    """The attachment once its upload was processed (deployed: polled until UPLOAD_WAIT_SECONDS)."""
    target.settle_uploads()
    deadline = time.monotonic() + target.upload_wait_seconds
    delay = 1.0
    while True:
        record: dict[str, Any] = client.call("GET", path).json()
        if record.get("status") == "available" or time.monotonic() >= deadline:
            return record
        time.sleep(delay)
        delay = min(delay * 2, 10)
