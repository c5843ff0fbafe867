"""Strong ETags for tasks: `"<taskId>.<version>"`, so a tag changes with every write."""

from core.domain.models import Task

MAX_VERSION_DIGITS = 18  # a version is a count of writes: far below DynamoDB's 38-digit numbers


def etag(task: Task) -> str:
    return f'"{task.taskId}.{task.version}"'


def version_from_if_match(task_id: str, if_match: str) -> int | None:
    """The version an If-Match header asks for.

    `*` asks only that the task exists (None: every conditional write checks that anyway);
    a header naming no version of this task (or one no task can reach) gets -1, which matches nothing,
    so the write is a 412.
    """
    prefix = f'"{task_id}.'
    for tag in (part.strip() for part in if_match.split(",")):
        if tag == "*":
            return None
        number = tag[len(prefix) : -1]
        valid = number.isascii() and number.isdigit() and len(number) <= MAX_VERSION_DIGITS
        if tag.startswith(prefix) and tag.endswith('"') and valid:
            return int(number)
    return -1


def none_match(if_none_match: str, task: Task) -> bool:
    """Whether an If-None-Match header names the task's current ETag (weak comparison, as RFC 9110 asks)."""
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag(task) in candidates
