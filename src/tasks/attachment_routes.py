"""`/tasks/{taskId}/attachments` routes."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from core.http.representations import download_json, granted_upload, upload_json
from core.services.attachments import Upload
from tasks.http import Request, json_response

router = APIGatewayHttpRouter()


@router.post("/tasks/<taskId>/attachments")
def create_attachment(taskId: str) -> Response[str]:
    """Start an attachment: its record and a presigned POST that uploads exactly the announced file."""
    request = Request(router)
    owner = request.caller()
    body = request.attachment_request()
    attachments = request.services.attachments

    def created(upload: Upload) -> Response[str]:
        location = f"/tasks/{taskId}/attachments/{upload.attachment.attachmentId}"
        return json_response(201, upload_json(upload), Location=location)

    def create() -> Response[str]:
        return created(attachments.create(owner, taskId, body.fileName, body.contentType, body.size))

    def replayed(first: Response[str]) -> Response[str]:
        if first.status_code != 201:
            return first
        upload = attachments.renew(owner, taskId, *granted_upload(str(first.body)))
        return first if upload is None else created(upload)

    return request.once(owner, f"/tasks/{taskId}/attachments", create, replayed)


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
