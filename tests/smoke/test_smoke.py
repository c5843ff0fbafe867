"""The main paths through every entry point: the HTTP API, the CRUD function URL and the export function URL."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.smoke.support import Client, Target, wait_until_available

pytestmark = pytest.mark.e2e  # against the local stack it runs with the e2e tests


@pytest.fixture
def tasks(target: Target, token: str) -> Iterator[list[str]]:
    """Ids of the tasks a test made: whatever is left is deleted afterwards (with its attachments)."""
    made: list[str] = []
    yield made
    api = Client(target.api_url, token)
    for task_id in made:
        assert api.call("DELETE", f"/tasks/{task_id}").status_code in (204, 404)


def create(client: Client, tasks: list[str], **fields: Any) -> dict[str, Any]:
    response = client.call("POST", "/tasks", json={"title": "smoke", **fields})
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    tasks.append(task["taskId"])
    return task


def test_every_entry_point_refuses_a_request_without_a_token(target: Target) -> None:
    for url in (
        target.api_url + "/tasks",
        target.function_url.rstrip("/") + "/tasks",
        target.export_url.rstrip("/") + "/tasks/export",
    ):
        response = requests.get(url, timeout=30)
        assert response.status_code == 401, (url, response.text)


@pytest.mark.parametrize("entry", ["api_url", "function_url"])
def test_create_get_patch_list_delete(target: Target, token: str, tasks: list[str], entry: str) -> None:
    client = Client(getattr(target, entry), token)
    task = create(client, tasks, title="smoke: lifecycle", priority="high", tags=["smoke"])
    path = f"/tasks/{task['taskId']}"

    fetched = client.call("GET", path)
    assert fetched.status_code == 200 and fetched.json()["title"] == "smoke: lifecycle"
    patched = client.call("PATCH", path, json={"status": "completed"}, headers={"If-Match": fetched.headers["ETag"]})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["status"], patched.json()["version"]) == ("completed", task["version"] + 1)

    listed = client.call("GET", "/tasks", params={"status": "completed", "limit": "1"})
    assert listed.status_code == 200, listed.text
    assert [item["taskId"] for item in listed.json()["items"]] == [task["taskId"]]

    assert client.call("DELETE", path).status_code == 204
    assert client.call("GET", path).status_code == 404


def test_a_listing_pages_with_its_cursor(target: Target, token: str, tasks: list[str]) -> None:
    client = Client(target.api_url, token)
    made = {create(client, tasks, title=f"smoke: page {n}")["taskId"] for n in range(3)}
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        page = client.call("GET", "/tasks", params=params)
        assert page.status_code == 200, page.text
        seen += [item["taskId"] for item in page.json()["items"]]
        if not page.json()["nextCursor"]:
            break
        params = {"limit": "2", "cursor": page.json()["nextCursor"]}
    assert sorted(seen) == sorted(made)


def test_the_export_streams_the_callers_tasks(target: Target, token: str, tasks: list[str]) -> None:
    api = Client(target.api_url, token)
    made = {create(api, tasks, title=f"smoke: export {n}")["taskId"] for n in range(3)}
    export = Client(target.export_url, token)
    response = export.call("GET", "/tasks/export", stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [line for line in response.iter_lines() if line]
    rows = [json.loads(line) for line in lines]
    assert rows[-1] == {"_end": {"count": 3, "nextCursor": None}}
    assert {row["taskId"] for row in rows[:-1]} == made


def test_an_attachment_is_uploaded_with_a_presigned_post_and_downloaded(
    target: Target, token: str, tasks: list[str]
) -> None:
    client = Client(target.api_url, token)
    task = create(client, tasks, title="smoke: attachment")
    data = "smoke test attachment ✓\n".encode()
    granted = client.call(
        "POST",
        f"/tasks/{task['taskId']}/attachments",
        json={"fileName": "smoke.txt", "contentType": "text/plain", "size": len(data)},
    )
    assert granted.status_code == 201, granted.text
    upload = granted.json()["upload"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("smoke.txt", data)}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text

    path = f"/tasks/{task['taskId']}/attachments/{granted.json()['attachmentId']}"
    record = wait_until_available(client, path, target)
    assert record["status"] == "available", record
    download = requests.get(record["download"]["url"], timeout=30)
    assert download.status_code == 200 and download.content == data

    assert client.call("DELETE", f"/tasks/{task['taskId']}").status_code == 204
    assert client.call("GET", path).status_code == 404
