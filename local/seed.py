"""Realistic demo tasks, created through the public API (`POST /tasks`) of a running local stack.

Going through the API keeps the seed honest: every task passes the same validation, gets the same
ids, timestamps and index keys as one a client creates, and no item format is copied here.
"""

import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

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
    if not api_url.startswith("http://"):
        raise ValueError(f"expected an http:// URL, got {api_url}")
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    result, lock, started = SeedResult(), threading.Lock(), time.monotonic()

    def create(task: dict[str, Any]) -> None:
        request = urllib.request.Request(f"{api_url.rstrip('/')}/tasks", json.dumps(task).encode(), headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http:// checked above
                status, text = response.status, ""
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        with lock:
            result.created += status == 201
            result.failed += status != 201
            if status != 201 and len(result.errors) < 5:
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
    """`seeding alice: 4200/10000 (42%) 510/s`: one line redrawn on a terminal, a line per 10% otherwise."""

    def __init__(self, label: str, stream: TextIO = sys.stderr):
        self.label, self.stream, self.interactive = label, stream, stream.isatty()
        self._shown = -1
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        step = done * (100 if self.interactive else 10) // max(total, 1)
        with self._lock:
            if step == self._shown:
                return
            self._shown = step
            text = f"{self.label}: {done}/{total} ({done * 100 // max(total, 1)}%) {done / max(elapsed, 1e-9):.0f}/s"
            end = "\n" if done >= total or not self.interactive else ""
            self.stream.write(f"\r{text}\x1b[K{end}" if self.interactive else text + end)
            self.stream.flush()
