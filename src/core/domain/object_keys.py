"""Attachment object keys: `attachments/<owner>/<taskId>/<attachmentId>`, made and read back in this one place.

How S3 reports a key depends on the route the report takes:
- classic event notifications (to Lambda, SQS, SNS) URL-encode it as a form value, a space as `+`
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html: "The object
  key name value is URL encoded. For example, 'red flower.jpg' becomes 'red+flower.jpg'");
- "Object Created" events through EventBridge, which this service uses, carry `detail.object.key`, and that
  page documents no encoding; its examples are plain keys
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html).

So the owner segment is written in an alphabet that no URL encoding changes: letters, digits, `-` and `_`
as they are, every other character as `~XX` per UTF-8 byte. A key this service makes then holds no `%`,
`+` or space, form-decoding it is the identity, and the one rule for a reported key, decode once as a
form value and then parse strictly, reads the raw and the encoded report alike. (`quote(owner)` could
not: the raw key of owner `a%7Cb` is the encoded key of owner `a|b`.)
"""

import re
import string
from urllib.parse import unquote_plus, unquote_to_bytes

from core.domain import ids

KEY_PREFIX = "attachments/"
_PLAIN = frozenset(string.ascii_letters + string.digits + "-_")
_ESCAPE = "~"
_SEGMENT = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")


def object_key(owner: str, task_id: str, attachment_id: str) -> str:
    return f"{KEY_PREFIX}{_owner_segment(owner)}/{task_id}/{attachment_id}"


def parse_reported_key(reported: str) -> tuple[str, str, str] | None:
    """(owner, task id, attachment id) of a key S3 reports, raw or URL-encoded; None for a key this
    service did not make (another layout, a malformed owner, ids it never issues)."""
    try:
        key = unquote_plus(reported, errors="strict")
    except UnicodeDecodeError:
        return None
    parts = key.removeprefix(KEY_PREFIX).split("/") if key.startswith(KEY_PREFIX) else []
    if len(parts) != 3 or not (ids.is_valid(parts[1]) and ids.is_valid(parts[2])):
        return None
    owner = _owner_from_segment(parts[0])
    return (owner, parts[1], parts[2]) if owner else None


def _owner_segment(owner: str) -> str:
    return "".join(ch if ch in _PLAIN else _escaped(ch) for ch in owner)


def _escaped(ch: str) -> str:
    return "".join(f"{_ESCAPE}{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))


def _owner_from_segment(segment: str) -> str | None:
    """The owner whose segment this is, or None when no owner's segment is written this way."""
    if not _SEGMENT.fullmatch(segment):
        return None
    try:
        owner = unquote_to_bytes(segment.replace(_ESCAPE, "%")).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return owner if _owner_segment(owner) == segment else None  # one spelling per owner
