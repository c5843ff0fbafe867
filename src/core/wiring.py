"""The one place the services are put together, from settings and AWS clients.

The CRUD handler, the streaming app, the upload-event handler, the tests, the benchmarks and the local
stack all call `build_services`; nothing else constructs repositories or services.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from core.config import CursorSecretSource, PublisherSettings, Settings
from core.cursor_keys import SecretsManagerKeys
from core.data.attachments import AttachmentRecords
from core.data.event_bus import EventBus
from core.data.objects import ObjectStore
from core.data.tasks import TaskRepository
from core.domain import clock
from core.domain.cursor import CursorCodec, CursorKeys, FixedKeys
from core.services.attachments import AttachmentService
from core.services.domain_events import EventPublisher
from core.services.tasks import TaskService

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

AWS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)
S3_CLIENT_CONFIG = AWS_CLIENT_CONFIG.merge(Config(signature_version="s3v4"))


@dataclass(frozen=True)
class Services:
    tasks: TaskService
    attachments: AttachmentService
    repository: TaskRepository


def build_services(
    settings: Settings,
    dynamodb: "DynamoDBClient",
    s3: "Callable[[], S3Client]",
    *,
    now: Callable[[], float] = clock.epoch_seconds,
) -> Services:
    """Every service of one execution environment. `s3` makes the S3 client when an attachment first needs it;
    `now` is the clock upload windows are measured with (tests move it)."""
    repository = TaskRepository(dynamodb, settings.table_name)
    attachments = AttachmentService(
        repository,
        AttachmentRecords(repository),
        ObjectStore(s3, settings.bucket_name),
        settings.attachment_limits(),
        now,
    )
    source = settings.cursor_secret_source()
    cursors = CursorCodec(cursor_keys(source)) if source is not None else None
    return Services(TaskService(repository, cursors, attachments), attachments, repository)


def build_event_publisher(settings: PublisherSettings, events: "EventBridgeClient") -> EventPublisher:
    """The event publisher's service: the stream's changes onto the stack's bus."""
    return EventPublisher(EventBus(events, settings.event_bus_name))


def cursor_keys(source: CursorSecretSource) -> CursorKeys:
    """The secret's versions, read when a cursor is first signed or checked; or the literal key."""
    if source.secret_id:
        return SecretsManagerKeys(source.secret_id, secretsmanager_client)
    return FixedKeys(source.literal)


def dynamodb_client() -> "DynamoDBClient":
    return boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)


def s3_client() -> "S3Client":
    return boto3.client("s3", config=S3_CLIENT_CONFIG)


def secretsmanager_client() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG)


def events_client() -> "EventBridgeClient":
    return boto3.client("events", config=AWS_CLIENT_CONFIG)
