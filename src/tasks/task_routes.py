"""`/tasks` routes: parse, call one use case, shape the response."""

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from core.http import etags
from core.http.query import parse_list_query
from tasks.http import Request, json_response, task_response

router = APIGatewayHttpRouter()
metrics = Metrics()


@router.post("/tasks")
def create_task() -> Response[str]:
    """Create a task."""
    request = Request(router)
    owner = request.caller()
    fields = request.task_fields().values()

    def create() -> Response[str]:
        task = request.services.tasks.create(owner, fields)
        metrics.add_metric(name="TaskCreated", unit=MetricUnit.Count, value=1)
        return task_response(task, 201, Location=f"/tasks/{task.taskId}")

    return request.once(owner, "/tasks", create)


@router.get("/tasks")
def list_tasks() -> Response[str]:
    """List the caller's tasks, a page at a time, filtered and sorted."""
    request = Request(router)
    owner = request.caller()
    page = request.services.tasks.list(owner, parse_list_query(request.event.query_string_parameters))
    return json_response(200, {"items": [task.to_json() for task in page.items], "nextCursor": page.next_cursor})


@router.get("/tasks/<taskId>")
def get_task(taskId: str) -> Response[str]:
    """Get a task (304 when If-None-Match names its current ETag)."""
    request = Request(router)
    task = request.services.tasks.get(request.caller(), taskId)
    if_none_match = request.header("if-none-match")
    if if_none_match and etags.none_match(if_none_match, task):
        return Response(304, None, "", {"ETag": etags.etag(task)})
    return task_response(task, 200)


@router.patch("/tasks/<taskId>")
def patch_task(taskId: str) -> Response[str]:
    """Change some fields (JSON merge patch: null resets an optional field)."""
    request = Request(router)
    owner = request.caller()
    changes = request.task_patch().as_changes()
    task = request.services.tasks.patch(owner, taskId, changes, request.expected_version(taskId))
    return task_response(task, 200)


@router.put("/tasks/<taskId>")
def replace_task(taskId: str) -> Response[str]:
    """Replace every writable field (absent optional fields reset to defaults)."""
    request = Request(router)
    owner = request.caller()
    fields = request.task_fields().values()
    task = request.services.tasks.replace(owner, taskId, fields, request.expected_version(taskId))
    return task_response(task, 200)


@router.delete("/tasks/<taskId>")
def delete_task(taskId: str) -> Response[str]:
    """Delete a task and its attachments."""
    request = Request(router)
    request.services.tasks.delete(request.caller(), taskId, request.expected_version(taskId))
    return Response(204, None, "")
