"""Attachment objects in S3: presigned uploads and downloads, and deletion of every version."""

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.data.aws_errors import aws_errors
from core.domain.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STORE = "attachment store"


class ObjectStore:
    def __init__(self, client_factory: "Callable[[], S3Client]", bucket: str):
        """The client is made when first needed: requests that touch no attachment never pay for it."""
        self._client_factory = client_factory
        self._bucket = bucket

    @cached_property
    def _client(self) -> "S3Client":
        return self._client_factory()

    def presigned_post(self, key: str, content_type: str, size: int, expires_in: int) -> dict[str, Any]:
        """A browser-style POST upload whose policy pins the key, the content type and the exact size."""
        with aws_errors(STORE):
            return self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"bucket": self._bucket},
                    ["eq", "$key", key],
                    ["eq", "$Content-Type", content_type],
                    ["content-length-range", size, size],
                ],
                ExpiresIn=expires_in,
            )

    def presigned_get(self, key: str, content_type: str, disposition: str, expires_in: int) -> str:
        with aws_errors(STORE):
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": disposition,
                    "ResponseContentType": content_type,
                },
                ExpiresIn=expires_in,
            )

    def delete_everything(self, keys: list[str]) -> None:
        """Delete each key with all its versions and delete markers, so nothing of it is left."""
        for key in keys:
            versions: list[Any] = []
            with aws_errors(STORE):
                pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self._bucket, Prefix=key)
                for page in pages:
                    for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if entry["Key"] == key:
                            versions.append({"Key": key, "VersionId": entry["VersionId"]})
            for start in range(0, len(versions), 1000):
                with aws_errors(STORE):
                    response = self._client.delete_objects(
                        Bucket=self._bucket, Delete={"Objects": versions[start : start + 1000], "Quiet": True}
                    )
                if response.get("Errors"):
                    raise ServiceUnavailable(f"the {STORE} did not delete every object; retry shortly")

    def delete_version(self, key: str, version_id: str | None) -> None:
        with aws_errors(STORE):
            if version_id:
                self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            else:
                self._client.delete_object(Bucket=self._bucket, Key=key)
