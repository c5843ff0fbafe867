"""The JSON the API returns for attachments: the record, plus how to upload or download its bytes."""

import json
from typing import Any, TypedDict

from core.domain import clock
from core.services.attachments import Download, Upload


class UploadGrant(TypedDict):
    """A presigned POST: send `fields` and then the file as multipart/form-data to `url` before `expiresAt`."""

    url: str
    fields: dict[str, str]
    expiresAt: str


class DownloadGrant(TypedDict):
    """A presigned GET of the uploaded object, valid until `expiresAt`."""

    url: str
    expiresAt: str


def upload_json(upload: Upload) -> dict[str, Any]:
    grant = UploadGrant(url=upload.url, fields=upload.fields, expiresAt=clock.from_epoch(upload.expires_at))
    return {**upload.attachment.to_json(), "upload": grant}


def download_json(download: Download) -> dict[str, Any]:
    grant: DownloadGrant | None = None
    if download.url is not None and download.expires_at is not None:
        grant = DownloadGrant(url=download.url, expiresAt=clock.from_epoch(download.expires_at))
    return {**download.attachment.to_json(), "download": grant}


def granted_upload(body: str) -> tuple[str, int]:
    """(attachment id, end of the upload window) of an `upload_json` body, as a stored response holds it."""
    document = json.loads(body)
    return str(document["attachmentId"]), int(clock.to_epoch(document["upload"]["expiresAt"]))
