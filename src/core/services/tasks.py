"""Task use cases shared by both functions. No HTTP here, and no AWS: the data layer does that."""

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.data.items import task_json_from_item
from core.data.tasks import TaskRepository
from core.domain import clock, ids
from core.domain.cursor import CursorCodec, Position
from core.domain.errors import ConfigurationError, PreconditionFailed, ServiceUnavailable
from core.domain.listing import ListQuery
from core.domain.models import WRITABLE_FIELDS, Task, defaults
from core.services.attachments import AttachmentService

logger = logging.getLogger(__name__)

# The export reads big pages: DynamoDB caps a page at 1 MB anyway, and fewer round trips are faster.
SCROLL_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    items: list[Task]
    next_cursor: str | None


@dataclass(frozen=True)
class ExportPage:
    rows: list[tuple[dict[str, Any], Position]]  # each matching task's public fields, and where it sits
    last_key: Position | None  # where the read stopped; None when nothing is left


class TaskService:
    def __init__(self, repository: TaskRepository, cursors: CursorCodec | None, attachments: AttachmentService):
        """`cursors`: None in a function that lists nothing (it has no key to sign cursors with)."""
        self._repository = repository
        self._cursors = cursors
        self._attachments = attachments

    def create(self, owner: str, fields: Mapping[str, Any]) -> Task:
        """A new task from validated writable fields; absent optional ones take their defaults."""
        task = _new_task(owner, fields)
        self._repository.create(task)
        return task

    def import_tasks(self, owner: str, many: Iterable[Mapping[str, Any]]) -> list[Task]:
        """Many new tasks at once, written in batches (seeding, tests and benchmarks load data this way)."""
        tasks = [_new_task(owner, fields) for fields in many]
        self._repository.put_many(tasks)
        return tasks

    def get(self, owner: str, task_id: str) -> Task:
        return self._repository.get(owner, task_id)

    def patch(self, owner: str, task_id: str, changes: Mapping[str, Any], expected_version: int | None) -> Task:
        """Apply a merge patch's changes (already resolved: a cleared field carries its default)."""
        if not changes:
            task = self._repository.get(owner, task_id)
            if expected_version is not None and task.version != expected_version:
                raise PreconditionFailed("the task has changed since the version in If-Match")
            return task
        return self._repository.update(owner, task_id, dict(changes), expected_version)

    def replace(self, owner: str, task_id: str, fields: Mapping[str, Any], expected_version: int | None) -> Task:
        return self._repository.update(owner, task_id, {**defaults(), **fields}, expected_version)

    def delete(self, owner: str, task_id: str, expected_version: int | None) -> None:
        """Delete a task, then try to delete its attachments at once.

        The task's removal is what counts: if the attachments cannot all go now, the clean-up function,
        fed by the table's stream, finishes the job, so the caller still gets its 204.
        """
        task = self._repository.delete(owner, task_id, expected_version)
        if task.hasAttachments:
            try:
                self._attachments.delete_all(owner, task_id)
            except ServiceUnavailable:
                logger.warning("attachments left for the clean-up function", extra={"task_id": task_id})

    def list(self, owner: str, query: ListQuery) -> Page:
        start = self._start(owner, query)
        tasks, last = self._repository.page(owner, query, start, query.limit)
        return Page(tasks, self._cursor(owner, query, last) if last else None)

    def export_pages(self, owner: str, query: ListQuery) -> Iterator[ExportPage]:
        """Every matching task from the query's cursor on, one DynamoDB page at a time (the export's source).

        Each page says where the read stopped, so an export can end after any page with a cursor that
        moves forward, even past a page in which nothing matched.
        """
        pages = self._repository.query_pages(owner, query, self._start(owner, query), lambda _: SCROLL_PAGE_SIZE)
        for page in pages:
            rows = [(task_json_from_item(item), page.position(item)) for item in page.items]
            yield ExportPage(rows, page.last_key)

    def resume_cursor(self, owner: str, query: ListQuery, position: Position) -> str:
        return self._cursor(owner, query, position)

    def _start(self, owner: str, query: ListQuery) -> Position | None:
        return self._codec().decode(query.cursor, owner, *query.fingerprints) if query.cursor else None

    def _cursor(self, owner: str, query: ListQuery, position: Position) -> str:
        return self._codec().encode(position, owner, query.fingerprint)

    def _codec(self) -> CursorCodec:
        if self._cursors is None:
            raise ConfigurationError("this function has no cursor key, so it cannot page through tasks")
        return self._cursors


def _new_task(owner: str, fields: Mapping[str, Any]) -> Task:
    values = {**defaults(), **fields}
    now = clock.utc_now()
    return Task(
        **{row.name: values[row.name] for row in WRITABLE_FIELDS},
        taskId=ids.new_id(),
        userId=owner,
        createdAt=now,
        updatedAt=now,
        completedAt=now if values["status"] == "completed" else None,
        version=1,
    )
