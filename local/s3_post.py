"""Presigned POST uploads checked as S3 checks them: signature, expiry, and every policy condition.

moto accepts any browser-style POST upload, whatever its policy says, so a policy that failed to pin
the key, content type or size would go unnoticed locally. This check runs in front of moto and
answers what S3 answers: 403 AccessDenied ("Invalid according to Policy: ..."), 403
SignatureDoesNotMatch, 400 EntityTooLarge / EntityTooSmall.
"""

import base64
import binascii
import email.parser
import email.policy
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request

from local.events import Response

_UNSIGNED_FIELDS = {"x-amz-signature", "signature", "awsaccesskeyid", "file", "policy"}  # and x-ignore-*


class PostPolicyError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>"
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
        )
        return Response(body, self.status, [("content-type", "application/xml")])


class PostPolicyGate:
    """Refuses browser-style POST uploads whose form does not satisfy their signed policy."""

    def __init__(self, secrets: Mapping[str, str], *, now: Any = None):
        self.secrets = dict(secrets)  # access key id -> secret access key
        self._now = now or (lambda: datetime.now(UTC))

    def __call__(self, request: Request) -> Response | None:
        """None to let the request through, or the error response S3 would give."""
        bucket, _, key = request.path.lstrip("/").partition("/")
        content_type = request.headers.get("content-type", "")
        if request.method != "POST" or not bucket or key or "multipart/form-data" not in content_type:
            return None
        form = parse_form(content_type, request.get_data())
        try:
            self.check(bucket, form.fields, form.file_size)
        except PostPolicyError as error:
            return error.response()
        return None

    def check(self, bucket: str, fields: Mapping[str, str], file_size: int) -> None:
        encoded = fields.get("policy")
        if not encoded:
            return  # an anonymous upload: the bucket policy decides (moto: allowed)
        self._check_signature(fields, encoded)
        try:
            policy = json.loads(base64.b64decode(encoded, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise PostPolicyError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from exc
        expiration = datetime.fromisoformat(str(policy.get("expiration", "")).replace("Z", "+00:00"))
        if expiration <= self._now():
            raise PostPolicyError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        values = {**fields, "bucket": bucket}
        covered = set()
        for condition in policy.get("conditions", []):
            covered |= self._check_condition(condition, values, file_size)
        extra = sorted(
            name for name in fields if name not in covered | _UNSIGNED_FIELDS and not name.startswith("x-ignore-")
        )
        if extra:
            raise PostPolicyError(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}")

    def _check_signature(self, fields: Mapping[str, str], policy: str) -> None:
        credential = fields.get("x-amz-credential", "")
        parts = credential.split("/")
        if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(parts) != 5:
            raise PostPolicyError(400, "InvalidArgument", "POST requires a SigV4 x-amz-credential and x-amz-algorithm")
        access_key, date, region, service, terminal = parts
        key = f"AWS4{self._secret(access_key)}".encode()
        for part in (date, region, service, terminal):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._compare(hmac.new(key, policy.encode(), hashlib.sha256).hexdigest(), fields.get("x-amz-signature", ""))

    def _secret(self, access_key: str) -> str:
        secret = self.secrets.get(access_key)
        if secret is None:
            raise PostPolicyError(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
        return secret

    @staticmethod
    def _compare(expected: str, given: str) -> None:
        if not hmac.compare_digest(expected, given):
            raise PostPolicyError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )

    @staticmethod
    def _check_condition(condition: Any, values: Mapping[str, str], file_size: int) -> set[str]:
        """Check one condition; the form fields it covers."""
        if isinstance(condition, Mapping):
            ((name, expected),) = condition.items()
            operator, field, argument = "eq", f"${name}", expected
        elif isinstance(condition, list) and condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if file_size > high:
                raise PostPolicyError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if file_size < low:
                raise PostPolicyError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum size")
            return set()
        elif isinstance(condition, list) and len(condition) == 3:
            operator, field, argument = str(condition[0]).lower(), str(condition[1]), condition[2]
        else:
            raise PostPolicyError(400, "InvalidPolicyDocument", f"Invalid Policy: condition {condition!r}")
        name = field.removeprefix("$").lower()
        actual = values.get(name, "")
        passed = actual == str(argument) if operator == "eq" else actual.startswith(str(argument))
        if operator not in ("eq", "starts-with") or not passed:
            failed = json.dumps(condition if isinstance(condition, list) else [operator, field, argument])
            raise PostPolicyError(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {failed}"
            )
        return {name}


@dataclass(frozen=True)
class UploadForm:
    fields: dict[str, str]  # text fields, names lower-cased
    file_size: int
    file_name: str

    @property
    def key(self) -> str:
        """The object key, `${filename}` filled in as S3 does."""
        return self.fields.get("key", "").replace("${filename}", self.file_name)


def parse_form(content_type: str, body: bytes) -> UploadForm:
    """A browser-style (multipart/form-data) upload: its text fields and its `file` part."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    file_size, file_name = 0, ""
    for part in message.iter_parts() if message.is_multipart() else ():
        name = str(part.get_param("name", header="content-disposition") or "").lower()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            file_size, file_name = len(data), part.get_filename() or ""
        elif name:
            fields[name] = data.decode("utf-8", errors="replace")
    return UploadForm(fields, file_size, file_name)
