"""S3 "Object Created" events (through EventBridge): an uploaded attachment becomes available.

An object nobody expects (its record is gone: the task or attachment was deleted while the
upload was in flight) is deleted, so S3 never holds bytes that no record points at.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.domain.tasks import attachment_service

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    key, size = detail["object"]["key"], int(detail["object"]["size"])
    outcome = attachment_service().confirm_upload(key, size, detail["object"].get("version-id"))
    logger.info("upload event handled", extra={"key": key, "size": size, "outcome": outcome})
    metrics.add_metric(name=f"Upload-{outcome}", unit=MetricUnit.Count, value=1)
    return {"outcome": outcome}
