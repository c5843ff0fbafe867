"""The text of a JSON request body, as the HTTP layer received it: media type, charset, size and encoding checked."""

import base64
import binascii

from core.domain.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "application/merge-patch+json")
MAX_BODY_BYTES = 32 * 1024


def json_body_text(content_type: str | None, body: str | None, is_base64: bool) -> str:
    """The body as text: 415 for another media type or charset, 413 over the limit, 400 if it is not UTF-8."""
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() not in JSON_TYPES:
        raise UnsupportedMediaType("send the body as application/json")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("send the body as application/json in UTF-8 (charset=utf-8)")
    raw = body or ""
    if len(raw) > 4 * MAX_BODY_BYTES:  # more than any encoding of an accepted body: not worth decoding
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = base64.b64decode(raw, validate=True) if is_base64 else raw.encode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError: a lone surrogate
        raise MalformedBody("the body is not valid JSON text") from None
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("the body is not valid UTF-8") from None
