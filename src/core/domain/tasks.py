"""Task use cases shared by both functions. No HTTP here; DynamoDB and S3 are the repository's.

The cached factories at the end wire the real AWS clients, once per process.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from core.config import get_settings
from core.data.repository import ObjectStore, TaskRepository
from core.domain import clock, ids
from core.domain.attachments import AttachmentService
from core.domain.cursor import CursorCodec, Position
from core.domain.errors import NotFound, PreconditionFailed
from core.domain.listing import ListQuery
from core.domain.models import Task

if TYPE_CHECKING:
    from core.http.bodies import TaskFields, TaskPatch

AWS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)
S3_CLIENT_CONFIG = AWS_CLIENT_CONFIG.merge(Config(signature_version="s3v4"))
# The export reads big pages: DynamoDB caps a page at 1 MB anyway, and fewer round trips are faster.
SCROLL_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    items: list[Task]
    next_cursor: str | None


class TaskService:
    def __init__(self, repository: TaskRepository, cursors: CursorCodec, attachments: AttachmentService):
        self._repository = repository
        self._cursors = cursors
        self._attachments = attachments

    def create(self, owner: str, fields: "TaskFields") -> Task:
        now = clock.utc_now()
        status = fields.status
        task = Task(
            taskId=ids.new_id(),
            userId=owner,
            title=fields.title,
            description=fields.description,
            status=status,
            priority=fields.priority,
            dueDate=fields.dueDate,
            tags=fields.tags,
            createdAt=now,
            updatedAt=now,
            completedAt=now if status == "completed" else None,
            version=1,
        )
        self._repository.create(task)
        return task

    def get(self, owner: str, task_id: str) -> Task:
        return self._repository.get(owner, task_id)

    def patch(self, owner: str, task_id: str, patch: "TaskPatch", expected_version: int | None) -> Task:
        changes = patch.as_changes()
        if not changes:
            task = self._repository.get(owner, task_id)
            if expected_version is not None and task.version != expected_version:
                raise PreconditionFailed("the task has changed since the version in If-Match")
            return task
        return self._repository.update(owner, task_id, changes, expected_version)

    def replace(self, owner: str, task_id: str, fields: "TaskFields", expected_version: int | None) -> Task:
        return self._repository.update(owner, task_id, fields.as_changes(), expected_version)

    def delete(self, owner: str, task_id: str, expected_version: int | None) -> None:
        """Delete a task and then its attachments.

        If the attachment clean-up fails after the task is gone, deleting the task again
        finishes it: a 404 first sweeps any attachments left behind under that task id.
        """
        try:
            task = self._repository.delete(owner, task_id, expected_version)
        except NotFound:
            if self._attachments.delete_all(owner, task_id):
                return
            raise
        if task.hasAttachments:
            self._attachments.delete_all(owner, task_id)

    def list(self, owner: str, query: ListQuery) -> Page:
        start = self._start(owner, query)
        tasks, last = self._repository.page(owner, query, start, query.limit)
        return Page(tasks, self._cursor(owner, query, last) if last else None)

    def scroll(self, owner: str, query: ListQuery) -> Iterator[tuple[Task, Position]]:
        """Every matching task from the query's cursor on, page by page (the export's source)."""
        return self._repository.scroll(owner, query, self._start(owner, query), batch=SCROLL_PAGE_SIZE)

    def resume_cursor(self, owner: str, query: ListQuery, position: Position) -> str:
        return self._cursor(owner, query, position)

    def _start(self, owner: str, query: ListQuery) -> Position | None:
        return self._cursors.decode(query.cursor, owner, query.fingerprint) if query.cursor else None

    def _cursor(self, owner: str, query: ListQuery, position: Position) -> str:
        return self._cursors.encode(position, owner, query.fingerprint)


@cache
def task_service() -> TaskService:
    settings = get_settings()
    return TaskService(
        _repository(),
        CursorCodec(settings.cursor_secret, settings.cursor_ttl_seconds),
        attachment_service(),
    )


@cache
def attachment_service() -> AttachmentService:
    settings = get_settings()
    objects = ObjectStore(lambda: boto3.client("s3", config=S3_CLIENT_CONFIG), settings.bucket_name)
    return AttachmentService(_repository(), objects, settings)


@cache
def _repository() -> TaskRepository:
    return TaskRepository(boto3.client("dynamodb", config=AWS_CLIENT_CONFIG), get_settings().table_name)
