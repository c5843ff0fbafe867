"""Task attachments: records in DynamoDB, bytes in S3, uploaded and downloaded with presigned requests.

An attachment is `pending` from the moment its upload is granted until S3 reports the object
(`confirm_upload`, called from the S3 "Object Created" event); only then is it `available` and
offered for download. A pending record past its upload window is dead: it is never shown, and
DynamoDB TTL removes it a day later.
"""

import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from core.config import AttachmentLimits
from core.data.attachments import AttachmentRecords
from core.data.objects import ObjectStore
from core.data.tasks import TaskRepository
from core.domain import clock, ids
from core.domain.errors import ConfigurationError, Conflict, FieldError, InvalidInput, LimitReached, NotFound
from core.domain.models import Attachment
from core.domain.object_keys import object_key, parse_reported_key

UPLOAD_URL_SECONDS = 900
DOWNLOAD_URL_SECONDS = 300


@dataclass(frozen=True)
class Upload:
    attachment: Attachment
    url: str
    fields: dict[str, str]
    expires_at: int


@dataclass(frozen=True)
class Download:
    attachment: Attachment
    url: str | None
    expires_at: int | None


def clean_file_name(name: str) -> str:
    """The last path segment, without control or formatting characters or quotes (they could split headers)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    cleaned = kept.replace('"', "'").strip().strip(".").strip()
    if not cleaned:
        raise InvalidInput([FieldError("fileName", "the file name has no usable characters")])
    return cleaned


def content_disposition(file_name: str) -> str:
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '\\";' else "_" for ch in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class AttachmentService:
    def __init__(
        self,
        tasks: TaskRepository,
        records: AttachmentRecords,
        objects: ObjectStore,
        limits: AttachmentLimits | None,
    ):
        """`limits`: what an attachment may be; None in a function that grants no uploads."""
        self._tasks = tasks
        self._records = records
        self._objects = objects
        self._limits = limits

    def create(self, owner: str, task_id: str, file_name: str, content_type: str, size: int) -> Upload:
        limits = self._limits
        if limits is None:
            raise ConfigurationError("this function has no attachment limits, so it grants no uploads")
        content_type = content_type.strip().lower()
        problems = []
        if content_type not in limits.content_types:
            problems.append(FieldError("contentType", f"must be one of: {', '.join(sorted(limits.content_types))}"))
        if size > limits.max_bytes:
            problems.append(FieldError("size", f"must be at most {limits.max_bytes} bytes"))
        if problems:
            raise InvalidInput(problems)
        file_name = clean_file_name(file_name)
        attachment_id = ids.new_id()
        expires_at = int(time.time()) + UPLOAD_URL_SECONDS
        attachment = Attachment(
            attachmentId=attachment_id,
            taskId=task_id,
            userId=owner,
            fileName=file_name,
            contentType=content_type,
            size=size,
            status="pending",
            createdAt=clock.utc_now(),
            key=object_key(owner, task_id, attachment_id),
            uploadExpiresAt=expires_at,
        )
        try:
            self._records.add(attachment, limits.max_count)
        except LimitReached:
            if not self._forget_dead_uploads(owner, task_id, limits.max_count):
                raise Conflict(f"a task can have at most {limits.max_count} attachments") from None
            try:
                self._records.add(attachment, limits.max_count)
            except LimitReached:
                raise Conflict(f"a task can have at most {limits.max_count} attachments") from None
        post = self._objects.presigned_post(attachment.key, content_type, size, UPLOAD_URL_SECONDS)
        return Upload(attachment, post["url"], post["fields"], expires_at)

    def _forget_dead_uploads(self, owner: str, task_id: str, max_count: int) -> bool:
        """Bring the counter down to the live attachments (uploads past their window no longer count);
        True if that leaves room for one more."""
        seen = self._records.count(owner, task_id)
        now = time.time()
        live = sum(1 for attachment in self._records.of_task(owner, task_id) if attachment.is_live(now))
        return live < seen and live < max_count and self._records.recount(owner, task_id, seen, live)

    def live(self, owner: str, task_id: str) -> list[Attachment]:
        self._tasks.get(owner, task_id)  # someone else's task, or none, is a 404 rather than an empty list
        now = time.time()
        return [attachment for attachment in self._records.of_task(owner, task_id) if attachment.is_live(now)]

    def get(self, owner: str, task_id: str, attachment_id: str) -> Download:
        self._tasks.get(owner, task_id)  # no download of an attachment whose task is gone, even before clean-up
        attachment = self._records.get(owner, task_id, attachment_id)
        if not attachment.is_live(time.time()):
            raise NotFound("attachment not found")
        if attachment.status != "available":
            return Download(attachment, None, None)
        disposition = content_disposition(attachment.fileName)
        url = self._objects.presigned_get(attachment.key, attachment.contentType, disposition, DOWNLOAD_URL_SECONDS)
        return Download(attachment, url, int(time.time()) + DOWNLOAD_URL_SECONDS)

    def delete(self, owner: str, task_id: str, attachment_id: str) -> None:
        attachment = self._records.get(owner, task_id, attachment_id)
        self._objects.delete_everything([attachment.key])
        self._records.delete_one(attachment)

    def delete_all(self, owner: str, task_id: str) -> bool:
        """Remove every attachment of a task (objects first, then records); True if there were any."""
        attachments = self._records.of_task(owner, task_id)
        if attachments:
            self._remove(attachments)
        return bool(attachments)

    def confirm_upload(self, key: str, size: int, version_id: str | None) -> str:
        """Handle S3's report of a new object: mark its record available, or delete an object nobody expects."""
        parsed = parse_reported_key(key)
        if parsed is None:
            return "ignored"
        owner, task_id, attachment_id = parsed
        try:
            self._records.mark_available(owner, task_id, attachment_id, size)
        except NotFound:
            self._objects.delete_version(object_key(owner, task_id, attachment_id), version_id)
            return "orphan-deleted"
        return "available"

    def _remove(self, attachments: list[Attachment]) -> None:
        # Objects go first: if this fails half way, the records still point at what is left,
        # and repeating the delete finishes the job. The other order could strand objects.
        self._objects.delete_everything([attachment.key for attachment in attachments])
        self._records.delete(attachments)
