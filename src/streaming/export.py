"""One export response: tasks read page by page and written as they come, within the invocation's budget.

The export stops early, cleanly, when the Lambda deadline (less the safety margin) or the byte budget is
near; `nextCursor` then resumes after the last task written. It is null exactly when nothing is left.
Each response writes at least one task, so resuming always progresses.
"""

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from core.config import ExportSettings
from core.domain import errors
from core.domain.cursor import Position
from core.http import problems
from core.services.tasks import ExportPage
from streaming.framing import Framing, dumps

logger = Logger()

WallClock = Callable[[], float]
"""Seconds since the epoch (the Lambda deadline is an epoch time)."""

LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"  # set by the Web Adapter: {"request_id", "deadline" (epoch ms), ...}
REQUEST_ID_HEADER = "x-amzn-request-id"
FLUSH_BYTES = 32 * 1024  # hand the server small batches, not one write per task
TRAILER_RESERVE_BYTES = 4 * 1024  # kept free in the byte budget for the final line (a cursor is <= 2 KiB)
CUT_OFF_MARGIN_SECONDS = 2.0  # left after a too-slow response is dropped, for the adapter to end the invocation


@dataclass(frozen=True)
class Invocation:
    """What the Web Adapter says about the Lambda invocation behind this request, if anything."""

    request_id: str
    deadline: float | None  # epoch seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "Invocation":
        context: dict[str, Any] = {}
        raw = headers.get(LAMBDA_CONTEXT_HEADER)
        if raw:
            try:
                parsed = json.loads(raw)
                context = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                logger.warning("ignoring an unreadable lambda context header")
        deadline_ms = context.get("deadline")
        request_id = context.get("request_id") or headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
        deadline = deadline_ms / 1000 if isinstance(deadline_ms, int) and deadline_ms > 0 else None
        return cls(str(request_id), deadline)


@dataclass(frozen=True)
class Budget:
    """When an export must stop: before the deadline less a safety margin, and before the byte limit."""

    clock: WallClock
    deadline: float
    safety_seconds: float
    max_bytes: int

    @classmethod
    def starting_now(cls, settings: ExportSettings, clock: WallClock, lambda_deadline: float | None) -> "Budget":
        deadline = clock() + settings.export_timeout_seconds  # the function timeout, outside Lambda
        if lambda_deadline is not None:
            deadline = min(deadline, lambda_deadline)
        return cls(clock, deadline, settings.export_safety_seconds, settings.export_max_bytes)

    def over_bytes(self, size: int) -> bool:
        """Whether a body of `size` bytes, plus its final line, would overrun the byte budget."""
        return size + TRAILER_RESERVE_BYTES > self.max_bytes

    def near_deadline(self) -> bool:
        """Whether too little time is left to read another page, or write more, safely."""
        return self.deadline - self.clock() < self.safety_seconds

    def seconds_to_cut_off(self) -> float:
        """How long a write may still take. At the cut-off, just before the deadline, a response still being
        written (a client reading too slowly to take even the final line in time) is dropped, unfinished."""
        return self.deadline - min(CUT_OFF_MARGIN_SECONDS, self.safety_seconds / 2) - self.clock()


class ExportStream:
    """The body of one export response: pages from `first` on, until the end, the budget or a failure.

    The budgets are checked for every page read, whether or not anything in it matched: the deadline after
    each page and after each batch handed to the server (a slow client makes those writes slow), the byte
    budget before each task. Where it stops, the cursor resumes after the last task written or, past a
    page, after the last item read, so it always moves forward.
    """

    def __init__(
        self,
        first: ExportPage | None,
        pages: Iterator[ExportPage],
        resume: Callable[[Position], str],
        framing: Framing,
        budget: Budget,
        log_keys: dict[str, Any],
    ):
        self._first = first
        self._pages = pages
        self._resume = resume
        self._framing = framing
        self._budget = budget
        self._log_keys = log_keys

    def chunks(self) -> Iterator[bytes]:
        buffer = bytearray(self._framing.opening)
        size, count = len(buffer), 0
        resume_at: Position | None = None  # after the last task written, or the last page read
        stopped: str | None = None
        page = self._first
        try:
            while page is not None and stopped is None:
                for row, position in page.rows:
                    piece = self._framing.item(dumps(row), count)
                    if resume_at is not None and self._budget.over_bytes(size + len(piece)):
                        stopped = "byte budget"
                        break
                    buffer += piece
                    size += len(piece)
                    count += 1
                    resume_at = position
                    if len(buffer) >= FLUSH_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
                        if self._budget.near_deadline():
                            stopped = "deadline"
                            break
                else:
                    if page.last_key is None:
                        break
                    resume_at = page.last_key
                    if self._budget.near_deadline():
                        stopped = "deadline"
                        break
                    page = next(self._pages, None)
            next_cursor = self._resume(resume_at) if stopped and resume_at is not None else None
            if stopped:
                logger.info("export stopped early", extra={**self._log_keys, "reason": stopped, "count": count})
            buffer += self._framing.end(count, next_cursor)
            logger.info("export finished", extra={**self._log_keys, "count": count, "complete": next_cursor is None})
        except errors.DomainError as error:
            problem = problems.from_error(error)
            logger.warning("export failed midway", extra={**self._log_keys, "count": count, "problem": problem.slug})
            buffer += self._framing.error(problem.body())
        except Exception:
            logger.exception("export failed midway", extra={**self._log_keys, "count": count})
            buffer += self._framing.error(problems.internal_error(self._log_keys["correlation_id"]).body())
        yield bytes(buffer)
