"""Task attachments: records in DynamoDB, bytes in S3, uploaded and downloaded with presigned requests.

An attachment is `pending` from the moment its upload is granted until S3 reports the object
(`confirm_upload`, called from the S3 "Object Created" event); only then is it `available` and
offered for download. A pending record past its upload window is dead: it is never shown, and
DynamoDB TTL removes it a day later.
"""

import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_plus

from core.config import Settings
from core.data.repository import ObjectStore, TaskRepository
from core.domain import clock, ids
from core.domain.errors import ConfigurationError, Conflict, FieldError, InvalidInput, NotFound
from core.domain.models import Attachment

if TYPE_CHECKING:
    from core.http.bodies import AttachmentRequest

KEY_PREFIX = "attachments/"


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


def object_key(owner: str, task_id: str, attachment_id: str) -> str:
    return f"{KEY_PREFIX}{quote(owner, safe='')}/{task_id}/{attachment_id}"


def parse_object_key(key: str) -> tuple[str, str, str] | None:
    """(owner, task id, attachment id) of a key this service made, or None for any other key."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    owner, task_id, attachment_id = unquote(parts[0]), parts[1], parts[2]
    if not (ids.is_valid(task_id) and ids.is_valid(attachment_id)):
        return None
    return (owner, task_id, attachment_id) if object_key(owner, task_id, attachment_id) == key else None


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
    def __init__(self, repository: TaskRepository, objects: ObjectStore, settings: Settings):
        self._repository = repository
        self._objects = objects
        self._settings = settings

    def create(self, owner: str, task_id: str, request: "AttachmentRequest") -> Upload:
        if not self._settings.attachment_content_types:
            raise ConfigurationError("ATTACHMENT_CONTENT_TYPES is required to accept attachments")
        content_type = request.contentType.strip().lower()
        problems = []
        if content_type not in self._settings.attachment_content_types:
            allowed = ", ".join(sorted(self._settings.attachment_content_types))
            problems.append(FieldError("contentType", f"must be one of: {allowed}"))
        if request.size > self._settings.attachment_max_bytes:
            problems.append(FieldError("size", f"must be at most {self._settings.attachment_max_bytes} bytes"))
        if problems:
            raise InvalidInput(problems)
        file_name = clean_file_name(request.fileName)
        live = self.live(owner, task_id)
        if len(live) >= self._settings.attachment_max_count:
            raise Conflict(f"a task can have at most {self._settings.attachment_max_count} attachments")
        attachment_id = ids.new_id()
        expires_at = int(time.time()) + self._settings.upload_url_seconds
        attachment = Attachment(
            attachmentId=attachment_id,
            taskId=task_id,
            userId=owner,
            fileName=file_name,
            contentType=content_type,
            size=request.size,
            status="pending",
            createdAt=clock.utc_now(),
            key=object_key(owner, task_id, attachment_id),
            uploadExpiresAt=expires_at,
        )
        self._repository.add_attachment(attachment)
        post = self._objects.presigned_post(
            attachment.key, content_type, request.size, self._settings.upload_url_seconds
        )
        return Upload(attachment, post["url"], post["fields"], expires_at)

    def live(self, owner: str, task_id: str) -> list[Attachment]:
        self._repository.get(owner, task_id)  # someone else's task, or none, is a 404 rather than an empty list
        now = time.time()
        return [attachment for attachment in self._repository.attachments(owner, task_id) if attachment.is_live(now)]

    def get(self, owner: str, task_id: str, attachment_id: str) -> Download:
        attachment = self._repository.get_attachment(owner, task_id, attachment_id)
        if not attachment.is_live(time.time()):
            raise NotFound("attachment not found")
        if attachment.status != "available":
            return Download(attachment, None, None)
        seconds = self._settings.download_url_seconds
        url = self._objects.presigned_get(
            attachment.key, attachment.contentType, content_disposition(attachment.fileName), seconds
        )
        return Download(attachment, url, int(time.time()) + seconds)

    def delete(self, owner: str, task_id: str, attachment_id: str) -> None:
        attachment = self._repository.get_attachment(owner, task_id, attachment_id)
        self._remove([attachment])

    def delete_all(self, owner: str, task_id: str) -> bool:
        """Remove every attachment of a task (objects first, then records); True if there were any."""
        attachments = self._repository.attachments(owner, task_id)
        self._remove(attachments)
        return bool(attachments)

    def confirm_upload(self, key: str, size: int, version_id: str | None) -> str:
        """Handle S3's report of a new object: mark its record available, or delete an object nobody expects."""
        # S3 may report the key URL-encoded; the key this service made is whichever form parses.
        parsed = parse_object_key(key) or parse_object_key(unquote_plus(key))
        if parsed is None:
            return "ignored"
        owner, task_id, attachment_id = parsed
        if self._repository.mark_available(owner, task_id, attachment_id, size):
            return "available"
        self._objects.delete_version(object_key(owner, task_id, attachment_id), version_id)
        return "orphan-deleted"

    def _remove(self, attachments: list[Attachment]) -> None:
        # Objects go first: if this fails half way, the records still point at what is left,
        # and repeating the delete finishes the job. The other order could strand objects.
        self._objects.delete_everything([attachment.key for attachment in attachments])
        self._repository.delete_attachment_records(attachments)


def upload_json(upload: Upload) -> dict[str, Any]:
    return {
        **upload.attachment.to_json(),
        "upload": {"url": upload.url, "fields": upload.fields, "expiresAt": _iso(upload.expires_at)},
    }


def download_json(download: Download) -> dict[str, Any]:
    body = download.attachment.to_json()
    if download.url is not None and download.expires_at is not None:
        body["download"] = {"url": download.url, "expiresAt": _iso(download.expires_at)}
    else:
        body["download"] = None
    return body


def _iso(epoch: int) -> str:
    return clock.from_epoch(epoch)
