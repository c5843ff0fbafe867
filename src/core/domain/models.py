"""The task resource as the service stores and returns it. Request bodies are parsed in `core.http.bodies`."""

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Status = Literal["pending", "in_progress", "completed", "cancelled"]
Priority = Literal["low", "medium", "high", "urgent"]
STATUSES: tuple[str, ...] = get_args(Status)
PRIORITIES: tuple[str, ...] = get_args(Priority)

WRITABLE_FIELDS = ("title", "description", "status", "priority", "dueDate", "tags")
READ_ONLY_FIELDS = frozenset({"taskId", "userId", "createdAt", "updatedAt", "completedAt", "version"})
ATTACHMENT_FIELDS = ("attachmentId", "taskId", "fileName", "contentType", "size", "status", "createdAt")
COUNTED_STATUSES = ("pending", "available")  # an attachment's statuses that hold a slot; "deleting" holds none
DEFAULTS: dict[str, Any] = {"description": "", "status": "pending", "priority": "medium", "dueDate": None, "tags": []}


@dataclass
class Task:
    taskId: str
    userId: str
    title: str
    description: str
    status: str
    priority: str
    dueDate: str | None
    tags: list[str]
    createdAt: str
    updatedAt: str
    completedAt: str | None
    version: int
    hasAttachments: bool = False  # set once an attachment was ever added; deletes cascade only then

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["hasAttachments"]
        return body


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
