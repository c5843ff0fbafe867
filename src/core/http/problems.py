"""RFC 9457 problem details: the one place where errors become HTTP statuses."""

from dataclasses import dataclass
from typing import Any

from core.domain import errors

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://serverless-tasks.dev/problems/"


@dataclass(frozen=True)
class Problem:
    status: int
    title: str
    detail: str
    slug: str
    extra: dict[str, Any]
    headers: dict[str, str]

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


_STATUS: list[tuple[type[errors.DomainError], int, str, str]] = [
    (errors.InvalidCursor, 400, "Invalid cursor", "invalid-cursor"),
    (errors.MalformedBody, 400, "Malformed request body", "malformed-body"),
    (errors.BadRequest, 400, "Bad request", "bad-request"),
    (errors.Unauthorized, 401, "Unauthorized", "unauthorized"),
    (errors.NotFound, 404, "Not found", "not-found"),
    (errors.MethodNotAllowed, 405, "Method not allowed", "method-not-allowed"),
    (errors.Conflict, 409, "Conflict", "conflict"),
    (errors.UploadWindowClosed, 410, "Upload window closed", "upload-window-closed"),
    (errors.PreconditionFailed, 412, "Precondition failed", "precondition-failed"),
    (errors.PayloadTooLarge, 413, "Payload too large", "payload-too-large"),
    (errors.UnsupportedMediaType, 415, "Unsupported media type", "unsupported-media-type"),
    (errors.InvalidInput, 422, "Validation failed", "validation-failed"),
    (errors.ServiceUnavailable, 503, "Service unavailable", "service-unavailable"),
]


def problem_types() -> list[tuple[int, str, str]]:
    """(status, title, slug) of every problem a domain error becomes."""
    return [(status, title, slug) for _, status, title, slug in _STATUS]


def from_error(error: errors.DomainError) -> Problem:
    status, title, slug = next((s, t, g) for kind, s, t, g in _STATUS if isinstance(error, kind))
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(error, errors.InvalidInput):
        extra["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    if isinstance(error, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(error, errors.MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, errors.ServiceUnavailable | errors.RequestInProgress):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return Problem(status, title, str(error) or title, slug, extra, headers)


def internal_error(correlation_id: str) -> Problem:
    return Problem(
        status=500,
        title="Internal server error",
        detail="The request failed unexpectedly. Quote the correlation id when reporting it.",
        slug="internal-error",
        extra={"correlationId": correlation_id},
        headers={},
    )


def not_found_route() -> Problem:
    return from_error(errors.NotFound("no such route"))
