"""The JSON the API returns for attachments: the record, plus how to upload or download its bytes."""

from typing import Any

from core.domain import clock
from core.domain.attachments import Download, Upload


def upload_json(upload: Upload) -> dict[str, Any]:
    return {
        **upload.attachment.to_json(),
        "upload": {"url": upload.url, "fields": upload.fields, "expiresAt": clock.from_epoch(upload.expires_at)},
    }


def download_json(download: Download) -> dict[str, Any]:
    body = download.attachment.to_json()
    if download.url is not None and download.expires_at is not None:
        body["download"] = {"url": download.url, "expiresAt": clock.from_epoch(download.expires_at)}
    else:
        body["download"] = None
    return body
