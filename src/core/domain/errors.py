"""Domain errors. They know nothing of HTTP; `core.http.problems` maps them to responses."""

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the service reports to a caller on purpose."""


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInput(DomainError):
    """The request is well-formed JSON but its fields break the rules."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class MalformedBody(DomainError):
    """The body is not parseable JSON (or not a JSON object)."""


class BadRequest(DomainError):
    """A query parameter or header that cannot be used."""


class InvalidCursor(BadRequest):
    """A cursor that is malformed, tampered with, expired, foreign or reused with other filters."""


class Unauthorized(DomainError):
    """No bearer token, or one that fails verification."""


class NotFound(DomainError):
    """The resource does not exist or belongs to someone else."""


class PreconditionFailed(DomainError):
    """If-Match names a version that is not the current one."""


class Conflict(DomainError):
    """The request cannot be applied to the current state (e.g. a limit is reached)."""


class LimitReached(Conflict):
    """Adding one more would pass a limit (the attachments of a task)."""


class RequestInProgress(Conflict):
    """The same request (same Idempotency-Key) is still being served; the caller should retry."""

    def __init__(self, message: str, retry_after_seconds: int = 1):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UploadWindowClosed(DomainError):
    """A replayed attachment grant whose upload can no longer happen: it was uploaded, or no longer counts."""


class PayloadTooLarge(DomainError):
    """The body is larger than the service accepts."""


class UnsupportedMediaType(DomainError):
    """The body is not JSON."""


class MethodNotAllowed(DomainError):
    def __init__(self, allowed: list[str]):
        super().__init__(f"allowed methods: {', '.join(allowed)}")
        self.allowed = allowed


class ServiceUnavailable(DomainError):
    """A dependency is throttling or unreachable; the caller should retry."""

    def __init__(self, message: str, retry_after_seconds: int = 1):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConfigurationError(Exception):
    """The function is deployed with missing or invalid settings (a 500, not a client error)."""


class EventsNotPublished(ServiceUnavailable):
    """The event bus refused some events after retries. `published`: how many leading events did get through."""

    def __init__(self, message: str, published: int):
        super().__init__(message)
        self.published = published
