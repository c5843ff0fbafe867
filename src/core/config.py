"""Settings of both functions, read from the environment in one place."""

import os
from dataclasses import dataclass, field
from functools import cache

from core.domain.errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    jwt_issuer: str
    jwt_audience: str
    jwks_url: str
    cursor_secret: str
    jwt_algorithms: tuple[str, ...] = ("RS256",)
    cursor_ttl_seconds: int = 24 * 3600
    max_body_bytes: int = 32 * 1024
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_max_count: int = 20
    attachment_content_types: frozenset[str] = field(default_factory=frozenset)
    upload_url_seconds: int = 900
    download_url_seconds: int = 300
    export_max_bytes: int = 150_000_000
    export_timeout_seconds: float = 300.0
    export_safety_seconds: float = 25.0


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"environment variable {name} must be a number") from exc
    if value <= 0:
        raise ConfigurationError(f"environment variable {name} must be positive")
    return value


@cache
def get_settings() -> Settings:
    issuer = _required("JWT_ISSUER").rstrip("/")
    secret = _required("CURSOR_SECRET")
    if len(secret) < 32:
        raise ConfigurationError("CURSOR_SECRET must be at least 32 characters")
    content_types = os.environ.get("ATTACHMENT_CONTENT_TYPES", "")  # set on the CRUD function only
    return Settings(
        table_name=_required("TABLE_NAME"),
        bucket_name=_required("BUCKET_NAME"),
        jwt_issuer=issuer,
        jwt_audience=_required("JWT_AUDIENCE"),
        jwks_url=os.environ.get("JWKS_URL", "").strip() or f"{issuer}/.well-known/jwks.json",
        cursor_secret=secret,
        attachment_max_bytes=int(_number("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)),
        attachment_max_count=int(_number("ATTACHMENT_MAX_COUNT", 20)),
        attachment_content_types=frozenset(item.strip().lower() for item in content_types.split(",") if item.strip()),
        export_max_bytes=int(_number("EXPORT_MAX_BYTES", 150_000_000)),
        export_timeout_seconds=_number("EXPORT_TIMEOUT_SECONDS", 300.0),
        export_safety_seconds=_number("EXPORT_SAFETY_SECONDS", 25.0),
    )
