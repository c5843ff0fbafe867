"""Settings, read from the environment once per execution environment and checked then.

`Settings` is what every function reads; the CRUD and export functions add their own. A missing or
invalid variable raises `ConfigurationError` naming it, at cold start, before any request is served.
Values that no deployment changes are constants next to the code that uses them, not settings.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from core.domain.errors import ConfigurationError

Environment = Mapping[str, str]


@dataclass(frozen=True)
class Settings:
    """Every function: where the tasks and the attachment objects are."""

    table_name: str
    bucket_name: str

    @classmethod
    def from_environment(cls, environ: Environment = os.environ) -> Self:
        """The settings, or one ConfigurationError that names every missing or invalid variable."""
        reader = _Reader(environ)
        values = cls._read(reader)
        if reader.problems:
            raise ConfigurationError("; ".join(reader.problems))
        return cls(**values)

    @classmethod
    def _read(cls, env: "_Reader") -> dict[str, Any]:
        return {"table_name": env.required("TABLE_NAME"), "bucket_name": env.required("BUCKET_NAME")}

    def attachment_limits(self) -> "AttachmentLimits | None":
        """What an attachment may be; None where this function grants no uploads."""
        return None

    def cursor_secret_source(self) -> "CursorSecretSource | None":
        """Where the key list cursors are signed with comes from; None where this function lists nothing."""
        return None


@dataclass(frozen=True)
class CursorSecretSource:
    """Exactly one of: a Secrets Manager secret read at run time (deployed), or a literal key (local, tests)."""

    secret_id: str
    literal: str


@dataclass(frozen=True)
class ApiSettings(Settings):
    """The functions that serve callers: they verify bearer tokens and sign list cursors."""

    jwt_issuer: str
    jwt_audience: str
    jwks_url: str  # "" means: the issuer's jwks_uri, found through OIDC discovery
    cursor_secret: str  # a literal key: the local stack, tests and benchmarks
    cursor_secret_id: str = field(default="", kw_only=True)  # the deployed functions: a Secrets Manager secret

    @classmethod
    def _read(cls, env: "_Reader") -> dict[str, Any]:
        secret, secret_id = env.optional("CURSOR_SECRET"), env.optional("CURSOR_SECRET_ARN")
        if bool(secret) == bool(secret_id):
            env.problems.append("set exactly one of the environment variables CURSOR_SECRET_ARN and CURSOR_SECRET")
        elif secret and len(secret) < 32:
            env.problems.append("environment variable CURSOR_SECRET must be at least 32 characters")
        return {
            **super()._read(env),
            "jwt_issuer": env.required("JWT_ISSUER"),
            "jwt_audience": env.required("JWT_AUDIENCE"),
            "jwks_url": env.optional("JWKS_URL"),
            "cursor_secret": secret,
            "cursor_secret_id": secret_id,
        }

    def cursor_secret_source(self) -> CursorSecretSource:
        return CursorSecretSource(secret_id=self.cursor_secret_id, literal=self.cursor_secret)


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int
    max_count: int
    content_types: frozenset[str]


@dataclass(frozen=True)
class CrudSettings(ApiSettings):
    """The CRUD function: the API's settings plus what an attachment may be."""

    attachments: AttachmentLimits

    @classmethod
    def _read(cls, env: "_Reader") -> dict[str, Any]:
        raw_types = env.required("ATTACHMENT_CONTENT_TYPES")
        content_types = frozenset(item.strip().lower() for item in raw_types.split(",") if item.strip())
        if raw_types and not content_types:
            env.problems.append("environment variable ATTACHMENT_CONTENT_TYPES names no content type")
        limits = AttachmentLimits(
            max_bytes=int(env.positive("ATTACHMENT_MAX_BYTES")),
            max_count=int(env.positive("ATTACHMENT_MAX_COUNT")),
            content_types=content_types,
        )
        return {**super()._read(env), "attachments": limits}

    def attachment_limits(self) -> AttachmentLimits:
        return self.attachments


@dataclass(frozen=True)
class ExportSettings(ApiSettings):
    """The export function: the API's settings plus when an export must stop."""

    export_max_bytes: int
    export_timeout_seconds: float  # the function's timeout: the deadline when no Lambda context says otherwise
    export_safety_seconds: float

    @classmethod
    def _read(cls, env: "_Reader") -> dict[str, Any]:
        return {
            **super()._read(env),
            "export_max_bytes": int(env.positive("EXPORT_MAX_BYTES")),
            "export_timeout_seconds": env.positive("EXPORT_TIMEOUT_SECONDS"),
            "export_safety_seconds": env.positive("EXPORT_SAFETY_SECONDS"),
        }


@dataclass(frozen=True)
class PublisherSettings(Settings):
    """The event publisher: the bus the domain events go to."""

    event_bus_name: str

    @classmethod
    def _read(cls, env: "_Reader") -> dict[str, Any]:
        return {**super()._read(env), "event_bus_name": env.required("EVENT_BUS_NAME")}


class _Reader:
    """Reads variables and notes every problem, so one error can name them all."""

    def __init__(self, environ: Environment):
        self._environ = environ
        self.problems: list[str] = []

    def optional(self, name: str) -> str:
        return self._environ.get(name, "").strip()

    def required(self, name: str) -> str:
        value = self.optional(name)
        if not value:
            self.problems.append(f"environment variable {name} is required")
        return value

    def positive(self, name: str) -> float:
        raw = self.required(name)
        if not raw:
            return 1.0
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            self.problems.append(f"environment variable {name} must be a positive number, not {raw!r}")
            return 1.0
        return value
