"""Realistic demo tasks, created through the public API (`POST /tasks`) of a running local stack.

Going through the API keeps the seed honest: every task passes the same validation, gets the same
ids, timestamps and index keys as one a client creates, and no item format is copied here.
"""

import http.client
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

_VERBS = (
    "Review", "Write", "Update", "Fix", "Plan", "Call", "Email", "Prepare", "Book", "Pay", "Clean", "Order",
    "Schedule", "Draft", "Test", "Refactor", "Renew", "Organise", "Read", "Sign",
)  # fmt: skip
_OBJECTS = (
    "the quarterly budget", "release notes for v{n}.{m}", "pull request #{k}", "the onboarding guide",
    "dentist appointment", "flight to Lisbon", "electricity bill", "the garage", "team offsite agenda",
    "the login page", "flaky checkout test", "insurance policy", "the design doc", "car service",
    "birthday present for Sam", "groceries", "the API rate limits", "passport", "conference talk",
    "the backlog", "invoice #{k}", "the kitchen sink", "on-call handover notes", "the data migration",
    "a thank-you note to Priya", "the retro board", "library books", "customer interview notes",
    "Ünïcödé test data ✓", "cache invalidation (again)",
)  # fmt: skip
_DESCRIPTIONS = (
    "",
    "",
    "See the thread in #ops for context.",
    "Blocked until the vendor replies.",
    "Needs a second pair of eyes before Friday.",
    "Bring the printed copy.\nAsk about the discount.",
    "Owner: me. Stakeholders: finance, legal.",
    "Low effort, high value - do it first thing.",
    "Follow-up from last week's 1:1.",
)
_TAGS = (
    "work", "home", "errands", "finance", "health", "reading", "q3", "backend", "frontend", "ops",
    "family", "travel", "admin", "someday", "waiting", "deep-work",
)  # fmt: skip
_STATUSES = (("pending", 40), ("in_progress", 25), ("completed", 30), ("cancelled", 5))
_PRIORITIES = (("low", 25), ("medium", 45), ("high", 22), ("urgent", 8))
_OFFSETS = ("Z", "+01:00", "-05:00", "+05:30")


def demo_task(rng: random.Random, now: datetime | None = None) -> dict[str, Any]:
    """One plausible task body for `POST /tasks`."""
    now = now or datetime.now(UTC)
    obj = rng.choice(_OBJECTS).format(n=rng.randint(1, 9), m=rng.randint(0, 20), k=rng.randint(100, 9999))
    task: dict[str, Any] = {
        "title": f"{rng.choice(_VERBS)} {obj}",
        "description": rng.choice(_DESCRIPTIONS),
        "status": _weighted(rng, _STATUSES),
        "priority": _weighted(rng, _PRIORITIES),
        "tags": rng.sample(_TAGS, k=rng.choice((0, 1, 1, 2, 2, 3, 4))),
    }
    roll = rng.random()
    if roll < 0.45:
        task["dueDate"] = (now + timedelta(days=rng.randint(-30, 90))).date().isoformat()
    elif roll < 0.7:
        due = now + timedelta(days=rng.randint(-10, 60), hours=rng.randint(0, 23))
        task["dueDate"] = due.strftime("%Y-%m-%dT%H:00:00") + rng.choice(_OFFSETS)
    return task


def demo_tasks(count: int, seed: int | None = None) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # demo data, not security
    now = datetime.now(UTC)
    for _ in range(count):
        yield demo_task(rng, now)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([value for value, _ in choices], weights=[weight for _, weight in choices])[0]


@dataclass
class SeedResult:
    created: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Client(threading.local):
    """One keep-alive connection per worker thread."""

    connection: http.client.HTTPConnection | None = None


def seed(
    api_url: str,
    token: str,
    count: int,
    *,
    concurrency: int = 8,
    seed_value: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> SeedResult:
    """Create `count` demo tasks through `POST {api_url}/tasks` as the token's user."""
    parts = urlsplit(api_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http:// URL, got {api_url}")
    host, port, base = parts.hostname, parts.port or 80, parts.path.rstrip("/")
    client = _Client()
    result = SeedResult()
    lock = threading.Lock()
    started = time.monotonic()

    def create(task: dict[str, Any]) -> None:
        body = json.dumps(task).encode()
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        status, text = 0, ""
        for attempt in range(3):
            if client.connection is None:
                client.connection = http.client.HTTPConnection(host, port, timeout=30)
            try:
                client.connection.request("POST", f"{base}/tasks", body=body, headers=headers)
                response = client.connection.getresponse()
                text = response.read().decode(errors="replace")
                status = response.status
                break
            except (ConnectionError, http.client.HTTPException, TimeoutError) as exc:
                client.connection.close()
                client.connection = None
                if attempt == 2:
                    status, text = 0, f"{type(exc).__name__}: {exc}"
        with lock:
            if status == 201:
                result.created += 1
            else:
                result.failed += 1
                if len(result.errors) < 5:
                    result.errors.append(f"{status} {text[:300]}")
            done = result.created + result.failed
        if progress is not None:
            progress(done, count, time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="seed") as pool:
        for _ in pool.map(create, demo_tasks(count, seed_value)):
            pass
    result.seconds = time.monotonic() - started
    return result


class ProgressLine:
    """`seeding alice: 4200/10000 (42%) 510/s, 11 s left`: one redrawn line on a terminal, every 10% otherwise."""

    def __init__(self, label: str, stream: TextIO = sys.stderr):
        self.label = label
        self.stream = stream
        self.interactive = stream.isatty()
        self._last = 0.0
        self._last_tenth = -1
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        with self._lock:
            finished = done >= total
            if self.interactive:
                now = time.monotonic()
                if not finished and now - self._last < 0.1:
                    return
                self._last = now
            else:
                tenth = done * 10 // total if total else 10
                if tenth == self._last_tenth:
                    return
                self._last_tenth = tenth
            rate = done / elapsed if elapsed > 0 else 0.0
            left = f", {(total - done) / rate:.0f} s left" if rate and not finished else ""
            percent = done * 100 // total if total else 100
            text = f"{self.label}: {done}/{total} ({percent}%) {rate:.0f}/s{left}"
            if self.interactive:
                self.stream.write(f"\r{text}\x1b[K" + ("\n" if finished else ""))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
