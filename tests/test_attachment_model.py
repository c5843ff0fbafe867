"""The attachment limit as a model (issue 18): any order of grants, uploads (on time and late, their S3
events delivered at once or later), expiries, replayed grants, deletes (whole, or stopped after the record
stopped counting), recounts, DynamoDB TTL and task deletes (the task item first, then its cascade's two
halves, with anything in between), on moto and on DynamoDB Local; and the same operations from many
threads at once on DynamoDB Local.

After every step: no task has more live attachments (pending within their window, or available) than
AttachmentMaxCount; the task's counter is at least the records that hold a slot and at most the limit;
every available record's object is in S3; and every object in S3 has a record, unless S3 has yet to
deliver the event that makes the upload handler delete it. A grant is refused exactly when every slot
holds a live attachment.
"""

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.data.attachments import AttachmentRecords
from core.data.items import (
    PENDING_RECORD_GRACE_SECONDS,
    attachment_from_item,
    deserialize,
    serialize,
    task_item_key,
    user_key,
)
from core.data.objects import ObjectStore
from core.data.tasks import TaskRepository
from core.domain.errors import Conflict, NotFound, ServiceUnavailable, UploadWindowClosed
from core.domain.models import Attachment
from core.services.attachments import UPLOAD_URL_SECONDS
from core.wiring import Services, build_services
from local.aws import MotoServer, client, create_table
from local.template import Template
from tests.local_support import DynamoDBLocal, start_dynamodb_local
from tests.support import ATTACHMENT_LIMITS, BUCKET, TABLE, crud_settings, race

MAX_COUNT = 2
SIZE = 11


@dataclass
class Clock:
    """The injected clock: upload windows pass when a step moves it."""

    now: float = field(default_factory=lambda: 1_800_000_000.0)

    def __call__(self) -> float:
        return self.now


@dataclass
class Aws:
    """One backend's clients: the tasks table (moto or DynamoDB Local) and the bucket (moto)."""

    dynamodb: Any
    s3: Any

    def services(self, clock: Clock) -> Services:
        settings = replace(crud_settings("http://127.0.0.1:9/jwks"), attachments=self.limits())
        return build_services(settings, self.dynamodb, lambda: self.s3, now=clock)

    @staticmethod
    def limits() -> Any:
        return replace(ATTACHMENT_LIMITS, max_count=MAX_COUNT)


@pytest.fixture(scope="module")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    server = start_dynamodb_local()
    yield server
    server.stop()


@pytest.fixture(params=["moto", pytest.param("dynamodb-local", marks=pytest.mark.e2e)])
def aws(request: pytest.FixtureRequest, moto_server: MotoServer) -> Aws:
    endpoint = request.getfixturevalue("dynamodb_local").endpoint if request.param == "dynamodb-local" else None
    dynamodb = client("dynamodb", endpoint or moto_server.url)
    create_table(dynamodb, Template.load(), TABLE)  # unless this DynamoDB Local has it from another test
    s3 = client("s3", moto_server.url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return Aws(dynamodb, s3)


class World:
    """What the steps and the checks share: one owner's tasks, records and objects, seen through the app's own
    data layer and directly."""

    def __init__(self, aws: Aws, clock: Clock):
        self.aws, self.clock = aws, clock
        self.owner = f"model-{uuid4().hex}"
        self.services = aws.services(clock)
        self.records = AttachmentRecords(TaskRepository(aws.dynamodb, TABLE))
        self.objects = ObjectStore(lambda: aws.s3, BUCKET)
        self.undelivered: set[tuple[str, str]] = set()  # (key, version) S3 has yet to announce
        self.lock = threading.Lock()

    def new_task(self) -> str:
        return self.services.tasks.create(self.owner, {"title": "with attachments"}).taskId

    def task_exists(self, task_id: str) -> bool:
        try:
            self.services.tasks.get(self.owner, task_id)
        except NotFound:
            return False
        return True

    def counter(self, task_id: str) -> int:
        item = self.aws.dynamodb.get_item(
            TableName=TABLE, Key=serialize(task_item_key(self.owner, task_id)), ConsistentRead=True
        )["Item"]
        return int(deserialize(item).get("attachmentCount", 0))

    def records_of(self, task_id: str) -> list[Attachment]:
        return self.records.of_task(self.owner, task_id)

    def live(self, task_id: str) -> list[Attachment]:
        return [record for record in self.records_of(task_id) if record.is_live(self.clock())]

    def partition(self) -> tuple[dict[str, int], dict[str, Attachment]]:
        """The owner's whole partition in one Query: each task's counter by task id, and every attachment
        record by object key (tasks and records share the owner's partition key)."""
        response = self.aws.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialize({":pk": user_key(self.owner)}),
            ConsistentRead=True,
        )
        assert "LastEvaluatedKey" not in response
        items = [deserialize(item) for item in response["Items"]]
        tasks = [item for item in items if item["sk"].startswith("TASK#")]
        counters = {item["taskId"]: int(item.get("attachmentCount", 0)) for item in tasks}
        records = [attachment_from_item(item) for item in items if item["sk"].startswith("ATT#")]
        return counters, {record.key: record for record in records}

    def all_records(self) -> dict[str, Attachment]:
        return self.partition()[1]

    def object_versions(self) -> list[tuple[str, str]]:
        prefix = f"attachments/{self.owner}/"
        listing = self.aws.s3.list_object_versions(Bucket=BUCKET, Prefix=prefix)
        assert not listing.get("IsTruncated")
        return [(entry["Key"], entry["VersionId"]) for entry in listing.get("Versions", [])]

    def upload(self, grant: Attachment) -> tuple[str, str]:
        """The browser's POST (moto checks no policy: an upload after the window lands too, as a stand-in for an
        upload whose event comes late); S3 announces it later."""
        put = self.aws.s3.put_object(Bucket=BUCKET, Key=grant.key, Body=b"x" * grant.size)
        landed = (grant.key, put["VersionId"])
        with self.lock:
            self.undelivered.add(landed)
        return landed

    def deliver(self, landed: tuple[str, str]) -> str:
        """S3's "Object Created" event reaching the upload handler."""
        outcome = self.services.attachments.confirm_upload(landed[0], SIZE, landed[1])
        with self.lock:
            self.undelivered.discard(landed)
        return outcome

    def ttl_sweep(self) -> None:
        """What DynamoDB TTL does: delete items whose `expiresAt` passed, behind the app's back."""
        response = self.aws.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :att)",
            FilterExpression="expiresAt < :now",
            ExpressionAttributeValues=serialize(
                {":pk": user_key(self.owner), ":att": "ATT#", ":now": int(self.clock())}
            ),
            ConsistentRead=True,
        )
        for item in response["Items"]:
            self.aws.dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})

    def check(self) -> None:
        """The invariants (call them when nothing is in flight)."""
        counters, records = self.partition()
        versions = self.object_versions()
        now = self.clock()
        for task_id, counter in counters.items():
            of_task = [record for record in records.values() if record.taskId == task_id]
            live = [record for record in of_task if record.is_live(now)]
            assert len(live) <= MAX_COUNT, f"{len(live)} live attachments: {live}"
            counted = sum(1 for record in of_task if record.counts())
            assert counted <= counter <= MAX_COUNT, (counted, counter)
        stored = {key for key, _ in versions}
        for key, record in records.items():
            if record.status == "available" and record.taskId in counters:
                assert key in stored, f"available attachment without its object: {record}"
        with self.lock:
            orphans = [landed for landed in versions if landed[0] not in records and landed not in self.undelivered]
        assert not orphans, f"objects no record points at: {orphans}"


def grant(world: World, task_id: str) -> Attachment | None:
    """A grant, checked to be exact: refused exactly when every slot holds a live attachment (sequential use)."""
    live_before = len(world.live(task_id)) if world.task_exists(task_id) else None
    try:
        upload = world.services.attachments.create(world.owner, task_id, "a.pdf", "application/pdf", SIZE)
    except NotFound:
        assert live_before is None
        return None
    except Conflict:
        assert live_before == MAX_COUNT
        return None
    assert live_before is not None and live_before < MAX_COUNT
    return upload.attachment


class AttachmentModel(RuleBasedStateMachine):
    aws: Aws  # the backend, set by the test

    tasks = Bundle("tasks")
    gone = Bundle("gone")  # tasks whose item is deleted, their cascade still to come
    grants = Bundle("grants")
    landed = Bundle("landed")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.started = self.clock.now
        self.world = World(self.aws, self.clock)
        self.objects_cascaded: set[str] = set()  # gone tasks whose objects the clean-up deleted
        self.known_tasks: list[str] = []

    @initialize(target=tasks)
    def first_task(self) -> str:
        return self._task()

    @precondition(lambda self: len(self.known_tasks) < 2)
    @rule(target=tasks)
    def another_task(self) -> str:
        return self._task()

    def _task(self) -> str:
        task_id = self.world.new_task()
        self.known_tasks.append(task_id)
        return task_id

    @rule(target=grants, task_id=tasks)
    def grant(self, task_id: str) -> Any:
        granted = grant(self.world, task_id)
        return multiple() if granted is None else granted

    @rule(target=landed, attachment=grants)
    def upload(self, attachment: Attachment) -> tuple[str, str]:
        return self.world.upload(attachment)

    @rule(landed=consumes(landed))
    def deliver(self, landed: tuple[str, str]) -> None:
        self.world.deliver(landed)

    @rule(attachment=grants)
    def upload_and_deliver(self, attachment: Attachment) -> None:
        self.world.deliver(self.world.upload(attachment))

    @rule(seconds=st.sampled_from([UPLOAD_URL_SECONDS // 2, UPLOAD_URL_SECONDS + 1, 25 * 3600]))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.clock.now - self.started > PENDING_RECORD_GRACE_SECONDS)
    @rule()
    def dynamodb_ttl(self) -> None:
        self.world.ttl_sweep()

    @rule(attachment=grants)
    def replay_the_grant(self, attachment: Attachment) -> None:
        """The same Idempotency-Key again: its first response held `attachment` and its first upload window."""
        try:
            renewed = self.world.services.attachments.renew(
                attachment.userId, attachment.taskId, attachment.attachmentId, attachment.uploadExpiresAt
            )
        except (NotFound, UploadWindowClosed):
            return
        if renewed is not None:
            assert renewed.attachment.attachmentId == attachment.attachmentId and renewed.expires_at > self.clock()

    @rule(attachment=grants)
    def delete(self, attachment: Attachment) -> None:
        with suppress(NotFound):
            self.world.services.attachments.delete(attachment.userId, attachment.taskId, attachment.attachmentId)

    @rule(attachment=grants)
    def delete_that_stops_after_uncounting(self, attachment: Attachment) -> None:
        """A delete whose S3 step failed: the record is `deleting` and still points at its objects."""
        with suppress(NotFound):
            record = self.world.records.get(attachment.userId, attachment.taskId, attachment.attachmentId)
            if record.counts():
                self.world.records.stop_counting(record)

    @rule(task_id=tasks)
    def recount(self, task_id: str) -> None:
        with suppress(NotFound):
            assert self.world.services.attachments.recount(self.world.owner, task_id) == len(self.world.live(task_id))

    @rule(task_id=tasks)
    def delete_task(self, task_id: str) -> None:
        """The whole delete request: the task item, then its attachments."""
        with suppress(NotFound):
            self.world.services.tasks.delete(self.world.owner, task_id, None)

    @rule(target=gone, task_id=tasks)
    def delete_task_item_only(self, task_id: str) -> str:
        """A delete request that dies once the task item is gone: the clean-up function's cascade comes later."""
        with suppress(NotFound):
            self.world.services.repository.delete(self.world.owner, task_id, None)
        return task_id

    @rule(task_id=gone)
    def cascade_objects(self, task_id: str) -> None:
        """The first half of the clean-up function's cascade (the objects)."""
        self.world.objects.delete_everything([record.key for record in self.world.records_of(task_id)])
        self.objects_cascaded.add(task_id)

    @rule(task_id=gone)
    def cascade_records(self, task_id: str) -> None:
        """The second half of the clean-up function's cascade (the records), which it only reaches once the
        first half is done (AttachmentService._remove: objects first, then records)."""
        if task_id in self.objects_cascaded:
            self.world.records.delete(self.world.records_of(task_id))

    @invariant()
    def agrees(self) -> None:
        self.world.check()


def test_the_model_holds_in_any_order(aws: Aws) -> None:
    AttachmentModel.aws = aws
    run_state_machine_as_test(
        AttachmentModel, settings=settings(max_examples=40, stateful_step_count=40, deadline=None)
    )


# --- the windows the model's steps are made of, each on its own -----------------------------------------


def test_an_upload_between_a_cascades_objects_and_its_records_is_deleted(aws: Aws) -> None:
    world = World(aws, Clock())
    task_id = world.new_task()
    granted = world.services.attachments.create(world.owner, task_id, "a.pdf", "application/pdf", SIZE).attachment
    world.services.repository.delete(world.owner, task_id, None)
    world.objects.delete_everything([record.key for record in world.records_of(task_id)])

    assert world.deliver(world.upload(granted)) == "orphan-deleted"
    world.records.delete(world.records_of(task_id))

    assert world.object_versions() == [] and world.all_records() == {}


def test_a_late_upload_for_a_forgotten_record_is_refused_and_its_object_deleted(aws: Aws) -> None:
    clock = Clock()
    world = World(aws, clock)
    task_id = world.new_task()
    dead = [grant(world, task_id) for _ in range(MAX_COUNT)]
    clock.now += UPLOAD_URL_SECONDS + 1
    assert world.services.attachments.recount(world.owner, task_id) == 0

    for granted in dead:
        assert granted is not None
        assert world.deliver(world.upload(granted)) == "orphan-deleted"
        with pytest.raises(NotFound):
            world.services.attachments.delete(world.owner, task_id, granted.attachmentId)

    assert world.object_versions() == [] and world.counter(task_id) == 0
    world.check()


def test_a_recount_read_before_a_delete_and_a_grant_writes_nothing(aws: Aws) -> None:
    # The counter goes down and up again between the recount's read and its write (A-B-A): the version moved.
    clock = Clock()
    world = World(aws, clock)
    task_id = world.new_task()
    dead = grant(world, task_id)
    clock.now += UPLOAD_URL_SECONDS + 1
    live = grant(world, task_id)
    assert dead is not None and live is not None
    seen = world.records.tally(world.owner, task_id)
    counted = world.records_of(task_id)

    world.services.attachments.delete(world.owner, task_id, live.attachmentId)
    assert grant(world, task_id) is not None
    assert world.records.tally(world.owner, task_id).count == seen.count

    assert not world.records.recount(world.owner, task_id, seen, len(counted), [dead])
    assert world.counter(task_id) == sum(1 for record in world.records_of(task_id) if record.counts())


def test_a_recount_read_before_an_upload_does_not_forget_the_uploaded_record(aws: Aws) -> None:
    clock = Clock()
    world = World(aws, clock)
    task_id = world.new_task()
    late = grant(world, task_id)
    assert late is not None
    clock.now += UPLOAD_URL_SECONDS + 1
    seen = world.records.tally(world.owner, task_id)

    assert world.deliver(world.upload(late)) == "available"  # its event came late; the record still counted

    assert not world.records.recount(world.owner, task_id, seen, 1, [late])
    assert [record.status for record in world.records_of(task_id)] == ["available"]
    world.check()


def test_an_upload_for_a_record_being_deleted_is_refused_and_its_object_deleted(aws: Aws) -> None:
    world = World(aws, Clock())
    task_id = world.new_task()
    granted = grant(world, task_id)
    assert granted is not None
    world.records.stop_counting(world.records.get(world.owner, task_id, granted.attachmentId))  # its S3 step failed

    assert world.deliver(world.upload(granted)) == "orphan-deleted"
    assert [record.status for record in world.records_of(task_id)] == ["deleting"]
    world.services.attachments.delete(world.owner, task_id, granted.attachmentId)  # deleting again finishes

    assert world.object_versions() == [] and world.all_records() == {} and world.counter(task_id) == 0


def test_a_second_delete_of_the_same_record_does_not_uncount_it_again(aws: Aws) -> None:
    world = World(aws, Clock())
    task_id = world.new_task()
    granted = grant(world, task_id)
    assert granted is not None and grant(world, task_id) is not None
    read_by_both = world.records.get(world.owner, task_id, granted.attachmentId)

    world.records.stop_counting(read_by_both)
    world.records.stop_counting(read_by_both)

    assert world.counter(task_id) == 1
    world.services.attachments.delete(world.owner, task_id, granted.attachmentId)
    assert world.counter(task_id) == 1 and len(world.records_of(task_id)) == 1


def test_tasks_counted_by_the_code_before_the_version_keep_working(aws: Aws) -> None:
    # Compatibility: task items stored before `attachmentVersion` existed have none, and the recount of that
    # code may have left `attachmentCount` below the records that hold a slot.
    clock = Clock()
    world = World(aws, clock)
    task_id = world.new_task()
    first, second = grant(world, task_id), grant(world, task_id)
    assert first is not None and second is not None

    def stored_before(count: int) -> None:
        aws.dynamodb.update_item(
            TableName=TABLE,
            Key=serialize(task_item_key(world.owner, task_id)),
            UpdateExpression="SET attachmentCount = :count REMOVE attachmentVersion",
            ExpressionAttributeValues=serialize({":count": count}),
        )

    stored_before(0)
    world.services.attachments.delete(world.owner, task_id, first.attachmentId)
    assert world.counter(task_id) == 0 and [r.attachmentId for r in world.records_of(task_id)] == [second.attachmentId]

    stored_before(MAX_COUNT)
    clock.now += UPLOAD_URL_SECONDS + 1
    assert grant(world, task_id) is not None  # the recount at the limit forgets the dead one
    assert world.counter(task_id) == 1
    world.check()


THREADS = 8
ROUNDS = 6
STEPS = 4


@pytest.mark.e2e
def test_concurrent_grants_deletes_uploads_and_recounts_keep_the_limit(
    dynamodb_local: DynamoDBLocal, moto_server: MotoServer
) -> None:
    # Rounds of threads, each doing a few random operations on two tasks at once (as many clients and upload
    # events do); between rounds, with nothing in flight, the invariants hold, and the counter is exact (no TTL).
    dynamodb = client("dynamodb", dynamodb_local.endpoint)
    create_table(dynamodb, Template.load(), TABLE)
    s3 = client("s3", moto_server.url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    clock = Clock()
    world = World(Aws(dynamodb, s3), clock)
    tasks = [world.new_task(), world.new_task()]
    granted: list[Attachment] = []
    attachments = world.services.attachments

    def grant_one(pick: random.Random) -> None:
        upload = attachments.create(world.owner, pick.choice(tasks), "a.pdf", "application/pdf", SIZE)
        with world.lock:
            granted.append(upload.attachment)

    def some_grant(pick: random.Random) -> Attachment | None:
        with world.lock:
            return pick.choice(granted) if granted else None

    def upload_one(pick: random.Random) -> None:
        if (chosen := some_grant(pick)) is not None:
            world.deliver(world.upload(chosen))

    def delete_one(pick: random.Random) -> None:
        if (chosen := some_grant(pick)) is not None:
            attachments.delete(world.owner, chosen.taskId, chosen.attachmentId)

    def recount(pick: random.Random) -> None:
        attachments.recount(world.owner, pick.choice(tasks))

    def replay(pick: random.Random) -> None:
        if (chosen := some_grant(pick)) is not None:
            attachments.renew(world.owner, chosen.taskId, chosen.attachmentId, chosen.uploadExpiresAt)

    operations: list[Callable[[random.Random], None]] = [grant_one, grant_one, upload_one, delete_one, recount, replay]

    failures: list[BaseException] = []
    refused: list[str] = []

    def client_of(round_number: int) -> Callable[[int], None]:
        def run(thread: int) -> None:
            pick = random.Random(round_number * THREADS + thread)
            for _ in range(STEPS):
                operation = pick.choice(operations)
                while True:  # as a client does on a 503 (DynamoDB cancels transactions that collide)
                    try:
                        operation(pick)
                    except ServiceUnavailable:
                        continue
                    except Conflict:
                        refused.append(operation.__name__)
                    except (NotFound, UploadWindowClosed):
                        pass
                    except Exception as unexpected:  # a 500: the test fails with it below
                        failures.append(unexpected)
                    break

        return run

    for round_number in range(ROUNDS):
        race(THREADS, client_of(round_number))
        assert not failures, failures
        world.check()
        for task_id in tasks:
            counted = sum(1 for record in world.records_of(task_id) if record.counts())
            assert world.counter(task_id) == counted
        clock.now += pick_seconds(round_number)
    assert granted and refused, "the limit was never reached: the rounds tested nothing"

    # Last, the first task is deleted (with its cascade) while the others upload to it and grant on it.
    doomed = tasks[0]

    def delete_doomed(pick: random.Random) -> None:
        world.services.tasks.delete(world.owner, doomed, None)

    operations[:] = [delete_doomed, grant_one, upload_one, upload_one]
    race(THREADS, client_of(ROUNDS))
    assert not failures, failures
    world.services.attachments.delete_all(world.owner, doomed)  # the clean-up function, had a cascade failed
    world.check()
    assert not world.task_exists(doomed) and world.records_of(doomed) == []
    assert not any(f"/{doomed}/" in key for key, _ in world.object_versions())


def pick_seconds(round_number: int) -> int:
    """Every other round, the upload windows of the grants so far pass."""
    return UPLOAD_URL_SECONDS + 1 if round_number % 2 else 0
