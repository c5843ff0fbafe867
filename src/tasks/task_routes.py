"""`/tasks` routes: parse, call one use case, shape the response."""

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from core.domain.listing import parse_list_query
from core.domain.models import Task, version_from_etag
from core.domain.tasks import task_service
from tasks.http import caller, json_response, task_fields, task_patch, task_response

router = APIGatewayHttpRouter()
metrics = Metrics()


@router.post("/tasks")
def create_task() -> Response[str]:
    task = task_service().create(caller(router.current_event), task_fields(router.current_event))
    metrics.add_metric(name="TaskCreated", unit=MetricUnit.Count, value=1)
    return task_response(task, 201, Location=f"/tasks/{task.taskId}")


@router.get("/tasks")
def list_tasks() -> Response[str]:
    query = parse_list_query(router.current_event.query_string_parameters)
    page = task_service().list(caller(router.current_event), query)
    return json_response(200, {"items": [task.to_json() for task in page.items], "nextCursor": page.next_cursor})


@router.get("/tasks/<taskId>")
def get_task(taskId: str) -> Response[str]:
    task = task_service().get(caller(router.current_event), taskId)
    if_none_match = router.current_event.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, task):
        return Response(304, None, "", {"ETag": task.etag})
    return task_response(task, 200)


@router.patch("/tasks/<taskId>")
def patch_task(taskId: str) -> Response[str]:
    owner = caller(router.current_event)
    task = task_service().patch(owner, taskId, task_patch(router.current_event), _expected_version(taskId))
    return task_response(task, 200)


@router.put("/tasks/<taskId>")
def replace_task(taskId: str) -> Response[str]:
    owner = caller(router.current_event)
    task = task_service().replace(owner, taskId, task_fields(router.current_event), _expected_version(taskId))
    return task_response(task, 200)


@router.delete("/tasks/<taskId>")
def delete_task(taskId: str) -> Response[str]:
    task_service().delete(caller(router.current_event), taskId, _expected_version(taskId))
    return Response(204, None, "")


def _expected_version(task_id: str) -> int | None:
    header = router.current_event.headers.get("if-match")
    return None if header is None else version_from_etag(task_id, header)


def _etag_matches(header: str, task: Task) -> bool:
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or task.etag in candidates
