"""The task clean-up function: when a task that had attachments is deleted, its attachments go too.

It reads the table's stream (REMOVE of a task item with `hasAttachments`, filtered by the event source
mapping) and deletes every attachment record and every version of every object of that task. The CRUD
function's delete already tries this synchronously; this is what finishes the job when that request failed
half way or its function died, with Lambda's retries, a dead-letter queue and an alarm behind it.
Each record is handled on its own: a failure is reported for that record only (partial batch response).
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.config import Settings
from core.data.items import removed_task
from core.services.attachments import AttachmentService
from core.startup import Handler, RestorableHandler
from core.wiring import build_services, dynamodb_client, s3_client

logger = Logger()
metrics = Metrics()


def create_handler(attachments: AttachmentService) -> Handler:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

    def clean_up(record: DynamoDBRecord) -> None:
        removed = removed_task(record.raw_event.get("dynamodb", {}).get("Keys", {}))
        if removed is None:
            return
        owner, task_id = removed
        if attachments.delete_all(owner, task_id):
            logger.info("attachments of a deleted task removed", extra={"task_id": task_id})
            metrics.add_metric(name="AttachmentsCleanedUp", unit=MetricUnit.Count, value=1)

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return dict(
            process_partial_response(event=event, record_handler=clean_up, processor=processor, context=context)
        )

    return handler


def _from_environment() -> Handler:
    return create_handler(build_services(Settings.from_environment(), dynamodb_client(), s3_client).attachments)


lambda_handler = RestorableHandler(_from_environment, logger)
