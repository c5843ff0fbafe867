"""Task attachments: records in DynamoDB, bytes in S3, uploaded and downloaded with presigned requests.

An attachment is `pending` from the moment its upload is granted until S3 reports the object
(`confirm_upload`, called from the S3 "Object Created" event); only then is it `available` and
offered for download. A pending record past its upload window is dead: it is never shown, and
DynamoDB TTL removes it a day later, unless a grant at the limit forgets it first (a recount).

Every pending or available record holds one of its task's slots, counted on the task item. A record
stops holding its slot only in the same transaction that uncounts it: a recount forgets (deletes) dead
ones, a delete makes the record `deleting` before its objects go. Nothing makes a record count again: S3's
report of an object whose record no longer counts, or whose task is gone, deletes that object.
"""

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from core.config import AttachmentLimits
from core.data.attachments import FORGOTTEN_PER_RECOUNT, AttachmentRecords, Tally
from core.data.objects import ObjectStore
from core.data.tasks import TaskRepository
from core.domain import clock, ids
from core.domain.errors import (
    ConfigurationError,
    Conflict,
    FieldError,
    InvalidInput,
    LimitReached,
    NotFound,
    ServiceUnavailable,
    UploadWindowClosed,
)
from core.domain.models import Attachment
from core.domain.object_keys import object_key, parse_reported_key

UPLOAD_URL_SECONDS = 900
DOWNLOAD_URL_SECONDS = 300
GRANT_ATTEMPTS = 5  # tries of a grant at the limit that concurrent changes may spoil before the caller retries


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
        now: Callable[[], float] = clock.epoch_seconds,
    ):
        """`limits`: what an attachment may be; None in a function that grants no uploads. `now`: the clock."""
        self._tasks = tasks
        self._records = records
        self._objects = objects
        self._limits = limits
        self._now = now

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
            uploadExpiresAt=int(self._now()) + UPLOAD_URL_SECONDS,
        )
        self._grant(attachment, limits.max_count)
        return self._upload(attachment)

    def _grant(self, attachment: Attachment, max_count: int) -> None:
        """Store the record within the limit. At the limit, a recount forgets the task's dead uploads and the
        grant is tried again: Conflict only when every slot holds a live attachment."""
        owner, task_id = attachment.userId, attachment.taskId
        for _ in range(GRANT_ATTEMPTS):
            try:
                self._records.add(attachment, max_count)
                return
            except LimitReached:
                pass
            count = self.recount(owner, task_id)
            if count is not None and count >= max_count:
                raise Conflict(f"a task can have at most {max_count} attachments")
        raise ServiceUnavailable("the task's attachments keep changing; retry shortly")

    def recount(self, owner: str, task_id: str) -> int | None:
        """Forget the task's dead uploads and set its counter to the records that still count (the live ones).

        Each write is one transaction that deletes up to FORGOTTEN_PER_RECOUNT dead records and sets the
        counter, and only if nothing changed since the read (see `AttachmentRecords.recount`). The new count;
        None when a concurrent grant, delete, upload or recount came first.
        """
        seen = self._records.tally(owner, task_id)
        now = self._now()
        counted = [record for record in self._records.of_task(owner, task_id) if record.counts()]
        dead = [record for record in counted if record.is_dead(now)]
        count = len(counted)
        if not dead and seen.count == count:
            return count
        for start in range(0, max(len(dead), 1), FORGOTTEN_PER_RECOUNT):
            forgotten = dead[start : start + FORGOTTEN_PER_RECOUNT]
            if not self._records.recount(owner, task_id, seen, count, forgotten):
                return None
            count -= len(forgotten)
            seen = Tally(count, seen.version + 1)
        return count

    def _upload(self, attachment: Attachment) -> Upload:
        expires_in = attachment.uploadExpiresAt - int(self._now())
        post = self._objects.presigned_post(attachment.key, attachment.contentType, attachment.size, expires_in)
        return Upload(attachment, post["url"], post["fields"], attachment.uploadExpiresAt)

    def renew(self, owner: str, task_id: str, attachment_id: str, granted_until: int) -> Upload | None:
        """What a replayed grant (same Idempotency-Key) gets, its first upload window ending at `granted_until`.

        None while that window is open and the attachment pending: the first response stands. After it, a
        fresh window and presigned POST for the same attachment while it is pending and still holds its slot.
        UploadWindowClosed once it was uploaded or no longer counts (deleted, or forgotten by a recount).
        """
        self._tasks.get(owner, task_id)  # a task that is gone is a 404, as for a first grant
        try:
            attachment = self._records.get(owner, task_id, attachment_id)
        except NotFound:
            attachment = None
        if attachment is not None and attachment.status == "available":
            raise UploadWindowClosed("this attachment is uploaded already: GET it, or ask for a new upload")
        if attachment is not None and attachment.status == "pending":
            now = int(self._now())
            if now < granted_until:
                return None
            try:
                return self._upload(self._records.reopen(attachment, now + UPLOAD_URL_SECONDS))
            except NotFound:
                pass
        raise UploadWindowClosed(
            "the upload window closed and the attachment no longer exists: ask for a new upload with a new "
            "Idempotency-Key"
        )

    def live(self, owner: str, task_id: str) -> list[Attachment]:
        self._tasks.get(owner, task_id)  # someone else's task, or none, is a 404 rather than an empty list
        now = self._now()
        return [attachment for attachment in self._records.of_task(owner, task_id) if attachment.is_live(now)]

    def get(self, owner: str, task_id: str, attachment_id: str) -> Download:
        self._tasks.get(owner, task_id)  # no download of an attachment whose task is gone, even before clean-up
        attachment = self._records.get(owner, task_id, attachment_id)
        if not attachment.is_live(self._now()):
            raise NotFound("attachment not found")
        if attachment.status != "available":
            return Download(attachment, None, None)
        disposition = content_disposition(attachment.fileName)
        url = self._objects.presigned_get(attachment.key, attachment.contentType, disposition, DOWNLOAD_URL_SECONDS)
        return Download(attachment, url, int(self._now()) + DOWNLOAD_URL_SECONDS)

    def delete(self, owner: str, task_id: str, attachment_id: str) -> None:
        """Uncount the record (it becomes `deleting`: no upload revives it), delete its objects, then the record.

        If the objects cannot all go now, the `deleting` record still points at them: deleting again finishes.
        """
        attachment = self._records.get(owner, task_id, attachment_id)
        if attachment.counts():
            self._records.stop_counting(attachment)
        self._objects.delete_everything([attachment.key])
        self._records.forget(attachment)

    def delete_all(self, owner: str, task_id: str) -> bool:
        """Remove every attachment of a task that is gone (objects first, then records); True if there were any."""
        attachments = self._records.of_task(owner, task_id)
        if attachments:
            self._remove(attachments)
        return bool(attachments)

    def confirm_upload(self, key: str, size: int, version_id: str | None) -> str:
        """Handle S3's report of a new object: mark its record available while it counts and its task exists,
        or delete the object (nobody expects it: its record or task is gone, or no longer counts it)."""
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
