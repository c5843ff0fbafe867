"""The event publisher: each committed change of the table (its stream) becomes a domain event on the bus.

Records are published in stream order. When one cannot be (the bus refuses it after retries), the function
reports it as the batch's first failure, so Lambda retries from that record and holds back the later records
of the shard (only events sent in the same PutEvents call may be on the bus already); after the mapping's
retries the batch goes to its dead-letter queue.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.config import PublisherSettings
from core.services.domain_events import EventPublisher
from core.startup import Handler, RestorableHandler
from core.wiring import build_event_publisher, events_client

logger = Logger()
metrics = Metrics()


def create_handler(publisher: EventPublisher) -> Handler:
    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = event.get("Records", [])
        outcome = publisher.publish(records)
        metrics.add_metric(name="DomainEventsPublished", unit=MetricUnit.Count, value=len(outcome.published))
        for published in outcome.published:
            logger.debug("domain event published", extra={"event_id": published.event_id})
        if outcome.first_failed is None:
            return {"batchItemFailures": []}
        failed = records[outcome.first_failed]["dynamodb"]["SequenceNumber"]
        logger.warning(
            "events not published; Lambda retries from this record",
            extra={"sequence_number": failed, "reason": outcome.reason},
        )
        return {"batchItemFailures": [{"itemIdentifier": failed}]}

    return handler


def _from_environment() -> Handler:
    return create_handler(build_event_publisher(PublisherSettings.from_environment(), events_client()))


lambda_handler = RestorableHandler(_from_environment, logger)
