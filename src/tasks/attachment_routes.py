"""`/tasks/{taskId}/attachments` routes."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from core.http.representations import download_json, upload_json
from tasks.http import Request, json_response

router = APIGatewayHttpRouter()


@router.post("/tasks/<taskId>/attachments")
def create_attachment(taskId: str) -> Response[str]:
    """Start an attachment: its record and a presigned POST that uploads exactly the announced file."""
    request = Request(router)
    owner = request.caller()
    body = request.attachment_request()

    def create() -> Response[str]:
        upload = request.services.attachments.create(owner, taskId, body.fileName, body.contentType, body.size)
        location = f"/tasks/{taskId}/attachments/{upload.attachment.attachmentId}"
        return json_response(201, upload_json(upload), Location=location)

    return request.once(owner, f"/tasks/{taskId}/attachments", create)


@router.get("/tasks/<taskId>/attachments")
def list_attachments(taskId: str) -> Response[str]:
    """List the task's attachments."""
    request = Request(router)
    attachments = request.services.attachments.live(request.caller(), taskId)
    return json_response(200, {"items": [attachment.to_json() for attachment in attachments]})


@router.get("/tasks/<taskId>/attachments/<attachmentId>")
def get_attachment(taskId: str, attachmentId: str) -> Response[str]:
    """Get an attachment, with a short-lived download URL once it is uploaded."""
    request = Request(router)
    download = request.services.attachments.get(request.caller(), taskId, attachmentId)
    return json_response(200, download_json(download), **{"Cache-Control": "no-store"})


@router.delete("/tasks/<taskId>/attachments/<attachmentId>")
def delete_attachment(taskId: str, attachmentId: str) -> Response[str]:
    """Delete an attachment and its object."""
    request = Request(router)
    request.services.attachments.delete(request.caller(), taskId, attachmentId)
    return Response(204, None, "")
