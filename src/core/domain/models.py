"""The task resource as the service stores and returns it. Request bodies are parsed in `core.http.bodies`."""

from dataclasses import asdict, dataclass
from typing import Any

from core.domain import clock
from core.domain.fields import (
    DUE_DATE_INDEX,
    STATUS_DUE_DATE_INDEX,
    STATUS_INDEX,
    Derived,
    Description,
    Filter,
    Instant,
    Match,
    Priority,
    Status,
    Stored,
    Tag,
    Tags,
    Title,
    list_filters,
    table,
    task_field,
)

ATTACHMENT_FIELDS = ("attachmentId", "taskId", "fileName", "contentType", "size", "status", "createdAt")
COUNTED_STATUSES = ("pending", "available")  # an attachment's statuses that hold a slot; "deleting" holds none


@dataclass(kw_only=True)
class Task:
    """The field table: every task field, declared once (see `core.domain.fields`). Build it by keyword."""

    taskId: str = task_field(writable=False, description="Server-made, time-ordered, opaque.")
    userId: str = task_field(writable=False, description="The owner: the token's `sub`.")
    title: Title = task_field(description="Surrounding whitespace is dropped.")
    description: Description = task_field(default="")
    status: Status = task_field(
        default="pending",
        filters=(
            Filter(
                "status",
                Status,
                Match.EQUALS,
                "Only tasks with this status.",
                key_indexes=(STATUS_INDEX, STATUS_DUE_DATE_INDEX),
            ),
        ),
    )
    priority: Priority = task_field(
        default="medium", filters=(Filter("priority", Priority, Match.EQUALS, "Only tasks with this priority."),)
    )
    dueDate: Instant | None = task_field(
        default=None,
        null_clears=True,
        derived=(Derived("dueAt", clock.parse_instant),),
        filters=(
            Filter(
                "dueBefore",
                Instant,
                Match.BEFORE,
                "Only tasks due before this moment.",
                attribute="dueAt",
                key_indexes=(DUE_DATE_INDEX, STATUS_DUE_DATE_INDEX),
            ),
            Filter(
                "dueAfter",
                Instant,
                Match.AFTER,
                "Only tasks due after this moment.",
                attribute="dueAt",
                key_indexes=(DUE_DATE_INDEX, STATUS_DUE_DATE_INDEX),
            ),
        ),
    )
    tags: Tags = task_field(
        default_factory=list,
        stored=Stored.TEXT_LIST,
        filters=(Filter("tag", Tag, Match.CONTAINS, "Only tasks carrying this tag."),),
    )
    createdAt: str = task_field(writable=False)
    updatedAt: str = task_field(writable=False)
    completedAt: str | None = task_field(
        default=None, writable=False, description="Set when the status becomes completed, cleared when it leaves it."
    )
    version: int = task_field(writable=False, stored=Stored.NUMBER, description="1 on create, +1 on every change.")
    hasAttachments: bool = task_field(  # set once an attachment was ever added; deletes cascade only then
        default=False, writable=False, public=False, stored=Stored.FLAG
    )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for row in INTERNAL_FIELDS:
            del body[row.name]
        return body


TASK_FIELDS = table(Task)
WRITABLE_FIELDS = tuple(row for row in TASK_FIELDS if row.spec.writable)
PUBLIC_FIELDS = tuple(row for row in TASK_FIELDS if row.spec.public)
INTERNAL_FIELDS = tuple(row for row in TASK_FIELDS if not row.spec.public)
READ_ONLY_FIELDS = frozenset(row.name for row in PUBLIC_FIELDS if not row.spec.writable)
FIELDS_BY_NAME = {row.name: row for row in TASK_FIELDS}
LIST_FILTERS = list_filters(TASK_FIELDS)


def defaults() -> dict[str, Any]:
    """Fresh default values of the optional writable fields."""
    return {row.name: row.default_value() for row in WRITABLE_FIELDS if not row.required}


@dataclass
class Attachment:
    attachmentId: str
    taskId: str
    userId: str
    fileName: str
    contentType: str
    size: int
    status: str  # "pending" until its object lands in S3, then "available"; "deleting" while it is deleted
    createdAt: str
    key: str
    uploadExpiresAt: int  # epoch seconds: a pending record past this is dead and never shown

    def counts(self) -> bool:
        """Whether it holds one of its task's attachment slots (the task's counter counts it)."""
        return self.status in COUNTED_STATUSES

    def is_live(self, now_epoch: float) -> bool:
        return self.status == "available" or (self.status == "pending" and self.uploadExpiresAt > now_epoch)

    def is_dead(self, now_epoch: float) -> bool:
        """A pending record past its upload window: it still counts until a recount forgets it."""
        return self.status == "pending" and self.uploadExpiresAt <= now_epoch

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ATTACHMENT_FIELDS}
