"""`/tasks/{taskId}/attachments` routes."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from core.domain.attachments import download_json, upload_json
from core.domain.tasks import attachment_service
from tasks.http import attachment_request, caller, json_response

router = APIGatewayHttpRouter()


@router.post("/tasks/<taskId>/attachments")
def create_attachment(taskId: str) -> Response[str]:
    owner = caller(router.current_event)
    upload = attachment_service().create(owner, taskId, attachment_request(router.current_event))
    location = f"/tasks/{taskId}/attachments/{upload.attachment.attachmentId}"
    return json_response(201, upload_json(upload), Location=location)


@router.get("/tasks/<taskId>/attachments")
def list_attachments(taskId: str) -> Response[str]:
    attachments = attachment_service().live(caller(router.current_event), taskId)
    return json_response(200, {"items": [attachment.to_json() for attachment in attachments]})


@router.get("/tasks/<taskId>/attachments/<attachmentId>")
def get_attachment(taskId: str, attachmentId: str) -> Response[str]:
    download = attachment_service().get(caller(router.current_event), taskId, attachmentId)
    return json_response(200, download_json(download), **{"Cache-Control": "no-store"})


@router.delete("/tasks/<taskId>/attachments/<attachmentId>")
def delete_attachment(taskId: str, attachmentId: str) -> Response[str]:
    attachment_service().delete(caller(router.current_event), taskId, attachmentId)
    return Response(204, None, "")
