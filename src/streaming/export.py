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
from core.domain.models import Task
from core.http import problems
from streaming.framing import Framing, dumps

logger = Logger()

WallClock = Callable[[], float]
"""Seconds since the epoch (the Lambda deadline is an epoch time)."""

LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"  # set by the Web Adapter: {"request_id", "deadline" (epoch ms), ...}
REQUEST_ID_HEADER = "x-amzn-request-id"
FLUSH_BYTES = 32 * 1024  # hand the server small batches, not one write per task
TRAILER_RESERVE_BYTES = 4 * 1024  # kept free in the byte budget for the final line (a cursor is <= 2 KiB)


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

    def exceeded(self, size: int) -> str | None:
        """Why a body of `size` bytes (plus its final line) would overrun the budget, or None."""
        if size + TRAILER_RESERVE_BYTES > self.max_bytes:
            return "byte budget"
        if self.deadline - self.clock() < self.safety_seconds:
            return "deadline"
        return None


class ExportStream:
    """The body of one export response: tasks from `first` on, until the end, the budget or a failure."""

    def __init__(
        self,
        first: tuple[Task, Position] | None,
        rows: Iterator[tuple[Task, Position]],
        resume: Callable[[Position], str],
        framing: Framing,
        budget: Budget,
        log_keys: dict[str, Any],
    ):
        self._first = first
        self._rows = rows
        self._resume = resume
        self._framing = framing
        self._budget = budget
        self._log_keys = log_keys

    def chunks(self) -> Iterator[bytes]:
        buffer = bytearray(self._framing.opening)
        size, count = len(buffer), 0
        row = self._first
        last: Position | None = None  # where the last task written sits: the resume point
        next_cursor: str | None = None
        try:
            while row is not None:
                task, position = row
                piece = self._framing.item(dumps(task.to_json()), count)
                stop = self._budget.exceeded(size + len(piece)) if last is not None else None  # >= 1 task each
                if stop and last is not None:
                    next_cursor = self._resume(last)
                    logger.info("export stopped early", extra={**self._log_keys, "reason": stop, "count": count})
                    break
                buffer += piece
                size += len(piece)
                count += 1
                last = position
                if len(buffer) >= FLUSH_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
                row = next(self._rows, None)
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
