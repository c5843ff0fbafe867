"""Races on DynamoDB Local, a real DynamoDB engine (moto lets racing conditional writers both win)."""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from core.config import AttachmentLimits
from core.domain.errors import Conflict, ServiceUnavailable
from core.wiring import Services, build_services
from local.aws import client
from tests.local_support import DynamoDBLocal, start_dynamodb_local
from tests.support import ALICE, ATTACHMENT_LIMITS, TABLE, create_table, crud_settings, race

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    server = start_dynamodb_local()
    yield server
    server.stop()


def services(endpoint: str, limits: AttachmentLimits) -> Services:
    dynamodb = client("dynamodb", endpoint)
    s3 = client("s3", "http://127.0.0.1:9")  # presigning needs no round trip
    settings = replace(crud_settings("http://127.0.0.1:9/jwks"), attachments=limits)
    return build_services(settings, dynamodb, lambda: s3)


def test_concurrent_grants_at_the_limit_let_exactly_the_remaining_ones_through(dynamodb_local: DynamoDBLocal) -> None:
    create_table(client("dynamodb", dynamodb_local.endpoint), TABLE)
    built = services(dynamodb_local.endpoint, replace(ATTACHMENT_LIMITS, max_count=5))
    task = built.tasks.create(ALICE, {"title": "racing uploads"})
    for n in range(2):
        built.attachments.create(ALICE, task.taskId, f"before-{n}.pdf", "application/pdf", 10)
    outcomes: list[str] = []

    def grant(n: int) -> None:
        while True:  # as a client does on a 503: DynamoDB may cancel a transaction that collides with another
            try:
                built.attachments.create(ALICE, task.taskId, f"racer-{n}.pdf", "application/pdf", 10)
                outcomes.append("granted")
            except Conflict:
                outcomes.append("409")
            except ServiceUnavailable:
                continue
            return

    race(10, grant)

    assert sorted(outcomes) == ["409"] * 7 + ["granted"] * 3
    assert len(built.attachments.live(ALICE, task.taskId)) == 5
