"""The upload-event function: S3 "Object Created" events (through EventBridge) make an attachment available.

An object nobody expects (its record is gone: the task or attachment was deleted while the
upload was in flight) is deleted, so S3 never holds bytes that no record points at.
"""

from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.config import Settings
from core.services.attachments import AttachmentService
from core.startup import Handler, RestorableHandler
from core.wiring import build_services, dynamodb_client, s3_client

logger = Logger()
metrics = Metrics()


def create_handler(attachments: AttachmentService) -> Handler:
    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    @event_source(data_class=EventBridgeEvent)
    def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
        detail = event.detail
        key, size = detail["object"]["key"], int(detail["object"]["size"])
        outcome = attachments.confirm_upload(key, size, detail["object"].get("version-id"))
        if outcome == "ignored":  # not a key this service made: refused, and nothing is marked or deleted
            logger.warning("upload event for a key this service did not make", extra={"key": key, "size": size})
        else:
            logger.info("upload event handled", extra={"key": key, "size": size, "outcome": outcome})
        metrics.add_metric(name=f"Upload-{outcome}", unit=MetricUnit.Count, value=1)
        return {"outcome": outcome}

    return cast(Handler, handler)  # Powertools' decorators are untyped


def _from_environment() -> Handler:
    return create_handler(build_services(Settings.from_environment(), dynamodb_client(), s3_client).attachments)


lambda_handler = RestorableHandler(_from_environment, logger)
