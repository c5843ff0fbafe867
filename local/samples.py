"""The task and attachment that the sample events in events/ name, loaded into a local table and bucket.

`make samples` (`PYTHONPATH=src python -m local.samples`, after `make run`) puts them there, so
`sam local invoke -e events/<name>.json` answers as the README shows, in its order, on a fresh table.
Their ids, owner and sizes are read from the events themselves; loading again puts them back as new
(version 1, the attachment pending).
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.attachments import AttachmentRecords
from core.data.tasks import TaskRepository
from core.domain.models import Attachment, Task
from core.domain.object_keys import object_key
from local import REPO_ROOT, aws
from local.stack import DEFAULT_STATE_FILE
from local.template import Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

EVENTS = REPO_ROOT / "events"
CREATED_AT = "2026-11-26T15:00:00.000000Z"
UPLOAD_EXPIRES_AT = 4102444800  # 2100-01-01: the sample's pending record never lapses
PDF_HEADER = b"%PDF-1.4\n"


@dataclass(frozen=True)
class Samples:
    task: Task
    attachment: Attachment


def samples(events: Path = EVENTS) -> Samples:
    """The sample task and attachment, as events/get-attachment.json and upload-event.json name them."""
    event = _event(events, "get-attachment")
    owner = str(event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"])
    task_id, attachment_id = event["pathParameters"]["taskId"], event["pathParameters"]["attachmentId"]
    grant = json.loads(_event(events, "create-attachment")["body"])
    size = int(_event(events, "upload-event")["detail"]["object"]["size"])
    replaced = json.loads(_event(events, "replace-task")["body"])
    task = Task(
        taskId=task_id,
        userId=owner,
        title=replaced["title"],
        description=replaced.get("description", ""),
        status="pending",
        priority=replaced.get("priority", "medium"),
        dueDate=replaced.get("dueDate"),
        tags=list(replaced.get("tags", [])),
        createdAt=CREATED_AT,
        updatedAt=CREATED_AT,
        completedAt=None,
        version=1,
    )
    attachment = Attachment(
        attachmentId=attachment_id,
        taskId=task_id,
        userId=owner,
        fileName=grant["fileName"],
        contentType=grant["contentType"],
        size=size,
        status="pending",
        createdAt=CREATED_AT,
        key=object_key(owner, task_id, attachment_id),
        uploadExpiresAt=UPLOAD_EXPIRES_AT,
    )
    return Samples(task, attachment)


def load_samples(dynamodb: "DynamoDBClient", table: str, s3: "S3Client", bucket: str, max_count: int) -> Samples:
    """Put the sample task (replacing it and its attachments if there) and its pending attachment."""
    found = samples()
    repository = TaskRepository(dynamodb, table)
    records = AttachmentRecords(repository)
    records.delete(records.of_task(found.task.userId, found.task.taskId))
    repository.put_many([found.task])
    records.add(found.attachment, max_count)
    body = PDF_HEADER + b"\0" * (found.attachment.size - len(PDF_HEADER))
    s3.put_object(Bucket=bucket, Key=found.attachment.key, Body=body, ContentType=found.attachment.contentType)
    return found


def _event(events: Path, name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((events / f"{name}.json").read_text())
    return event


# The order the README runs the sample events in (`sam local invoke <function> -e events/<name>.json`),
# after `make samples`: each finds what the ones before it left.
README_ORDER = (
    ("create-task", "TasksFunction"),
    ("list-tasks", "TasksFunction"),
    ("get-task", "TasksFunction"),
    ("patch-task", "TasksFunction"),  # If-Match version 1: the sample as loaded
    ("replace-task", "TasksFunction"),  # If-Match version 2: after the patch
    ("create-attachment", "TasksFunction"),
    ("list-attachments", "TasksFunction"),
    ("upload-event", "UploadEventsFunction"),  # S3's report of the sample attachment's upload
    ("get-attachment", "TasksFunction"),
    ("delete-attachment", "TasksFunction"),
    ("delete-task", "TasksFunction"),  # If-Match version 3: after the replace
    ("task-removed", "TaskCleanupFunction"),  # the table stream's record of that delete
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.samples", description=__doc__.splitlines()[0])
    parser.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help="the running stack's description")
    args = parser.parse_args(argv)
    try:
        state = json.loads(Path(args.state_file).read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError, TypeError):
        print("local samples: no running stack found (start it with `make run`)", file=sys.stderr)
        return 1
    dynamodb, s3 = aws.client("dynamodb", state["dynamodb_endpoint"]), aws.client("s3", state["aws_endpoint"])
    max_count = int(Template.load().parameters["AttachmentMaxCount"])
    loaded = load_samples(dynamodb, state["table_name"], s3, state["bucket_name"], max_count)
    print(
        f"loaded task {loaded.task.taskId} and its attachment {loaded.attachment.attachmentId} (pending) "
        f"of user {loaded.task.userId} into {state['table_name']} and {state['bucket_name']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
