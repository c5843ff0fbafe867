"""End to end over real HTTP against the `make run` stack, once on moto and once on DynamoDB Local."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from core.data.tasks import TaskRepository
from core.domain import ids
from core.domain.errors import PreconditionFailed
from core.domain.models import Task
from local.aws import client
from local.issuer import LocalIssuer
from tests.bad_tokens import bad_tokens
from tests.local_support import BACKENDS, StackProcess, stack_on, workers_of
from tests.support import race

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with stack_on(request.param, tmp_path_factory.mktemp("stack"), table_name="e2e-tasks") as process:
        yield process


@pytest.fixture(scope="module")
def stack_issuer(stack: StackProcess) -> LocalIssuer:
    return stack.issuer()


class Client:
    def __init__(self, base: str, stack_issuer: LocalIssuer, user: str):
        self.base = base
        self.headers = stack_issuer.bearer(user)
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def alice(stack: StackProcess, stack_issuer: LocalIssuer) -> Client:
    return Client(stack.info["api_url"], stack_issuer, f"alice-{uuid.uuid4()}")


@pytest.fixture
def bob(stack: StackProcess, stack_issuer: LocalIssuer) -> Client:
    return Client(stack.info["api_url"], stack_issuer, f"bob-{uuid.uuid4()}")


def create(client: Client, **fields: Any) -> dict[str, Any]:
    response = client.call("POST", "/tasks", json={"title": "e2e", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_task_lifecycle_over_the_http_api(alice: Client) -> None:
    created = alice.call("POST", "/tasks", json={"title": "  Ship it ", "tags": ["e2e"], "dueDate": "2027-01-31"})
    assert created.status_code == 201
    task = created.json()
    assert created.headers["Location"] == f"/tasks/{task['taskId']}"
    etag = created.headers["ETag"]
    path = f"/tasks/{task['taskId']}"

    assert alice.call("GET", path).json() == task
    assert alice.call("GET", path, headers={"If-None-Match": etag}).status_code == 304

    patched = alice.call("PATCH", path, json={"status": "completed"}, headers={"If-Match": etag})
    assert patched.status_code == 200
    assert patched.json()["completedAt"] is not None
    stale = alice.call("PATCH", path, json={"title": "lost"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.headers["Content-Type"] == PROBLEM

    replaced = alice.call("PUT", path, json={"title": "replaced"}, headers={"If-Match": patched.headers["ETag"]})
    assert replaced.status_code == 200
    assert (replaced.json()["title"], replaced.json()["status"], replaced.json()["version"]) == (
        "replaced",
        "pending",
        3,
    )

    assert alice.call("DELETE", path).status_code == 204
    assert alice.call("GET", path).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/tasks", {"data": "{", "headers": {"Content-Type": "application/json"}}, 400),
        ("GET", "/tasks?limit=500", {}, 400),
        ("GET", "/tasks?cursor=forged.cursor", {}, 400),
        ("GET", "/tasks/01JDX6Z8Q3V5K7M9P1R3T5W7Y9", {}, 404),
        ("GET", "/tasks/" + "x" * 2000, {}, 404),  # longer than a DynamoDB sort key may be
        ("DELETE", "/tasks/" + "x" * 2000, {}, 404),
        ("GET", "/tasks/" + "x" * 2000 + "/attachments", {}, 404),
        ("GET", "/tasks/01JDX6Z8Q3V5K7M9P1R3T5W7Y9/attachments/" + "y" * 2000, {}, 404),
        ("POST", "/tasks", {"json": {"title": "x", "description": "d" * 40_000}}, 413),
        ("POST", "/tasks", {"data": "title=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415),
        ("POST", "/tasks", {"json": {"title": "x", "version": 3}}, 422),
        ("POST", "/tasks", {"json": {"title": "😀" * 201}}, 422),
    ],
)
def test_error_statuses_are_problems(
    alice: Client, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = alice.call(method, path, **kwargs)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == status


def test_unicode_and_control_characters_round_trip(alice: Client) -> None:
    title = "Ünïcode 📝 日本語 \u202e nul:\x00 tab:\t"
    task = create(alice, title=title, tags=["🏷️", "ß"], description="d" * 10_000)

    assert alice.call("GET", f"/tasks/{task['taskId']}").json()["title"] == title.strip()
    listed = alice.call("GET", "/tasks", params={"tag": "🏷️"}).json()["items"]
    assert [item["taskId"] for item in listed] == [task["taskId"]]
    lone_surrogate = alice.call(
        "POST", "/tasks", data='{"title": "\\ud800"}', headers={"Content-Type": "application/json"}
    )
    assert lone_surrogate.status_code == 400


def test_undeclared_route_is_404_like_api_gateway(alice: Client) -> None:
    assert alice.call("GET", "/nothing").status_code == 404
    assert alice.call("POST", "/tasks/01JDX6Z8Q3V5K7M9P1R3T5W7Y9").status_code == 404


def test_pagination_walk_returns_every_task_once(alice: Client) -> None:
    made = {create(alice, title=f"page {i}", priority="high" if i % 3 else "low")["taskId"] for i in range(23)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "4", "priority": "high", **({"cursor": cursor} if cursor else {})}
        page = alice.call("GET", "/tasks", params=query).json()
        seen += [item["taskId"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 4
    high = {task_id for task_id in made if task_id in seen}
    assert len(seen) == len(set(seen)) == len(high) == 15
    assert pages == 4


def test_two_users_never_see_each_other(alice: Client, bob: Client) -> None:
    task = create(alice, title="alice's")
    path = f"/tasks/{task['taskId']}"

    assert bob.call("GET", path).status_code == 404
    assert bob.call("PATCH", path, json={"title": "mine"}).status_code == 404
    assert bob.call("PUT", path, json={"title": "mine"}).status_code == 404
    assert bob.call("DELETE", path).status_code == 404
    assert bob.call("GET", "/tasks").json() == {"items": [], "nextCursor": None}
    assert (
        bob.call(
            "POST", f"{path}/attachments", json={"fileName": "a.pdf", "contentType": "application/pdf", "size": 1}
        ).status_code
        == 404
    )
    assert alice.call("GET", path).json()["title"] == "alice's"


@pytest.fixture
def repository(stack: StackProcess, request: pytest.FixtureRequest) -> TaskRepository:
    """The functions' own repository on the stack's table, for races that need many writers at once."""
    if stack.info["dynamodb_endpoint"] == stack.info["aws_endpoint"]:
        pytest.skip("moto applies concurrent writes without isolation; races run on DynamoDB Local")
    return TaskRepository(client("dynamodb", stack.info["dynamodb_endpoint"]), stack.info["table_name"])


def test_racing_writers_on_one_version_exactly_one_wins(repository: TaskRepository) -> None:
    now = "2026-11-26T00:00:00.000000Z"
    task = Task(taskId=ids.new_id(), userId="racer", title="race", createdAt=now, updatedAt=now, version=1)
    repository.create(task)
    outcomes: list[str] = []

    def write(n: int) -> None:
        try:
            repository.update("racer", task.taskId, {"title": f"writer {n}"}, expected_version=1)
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("lost")

    race(8, write)

    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert repository.get("racer", task.taskId).version == 2


def test_concurrent_updates_without_if_match_are_never_lost(repository: TaskRepository) -> None:
    now = "2026-11-26T00:00:00.000000Z"
    task = Task(taskId=ids.new_id(), userId="racer", title="race", createdAt=now, updatedAt=now, version=1)
    repository.create(task)
    changes: list[dict[str, Any]] = [
        {"description": "d"},
        {"priority": "high"},
        {"tags": ["t"]},
        {"dueDate": "2027-03-01"},
        {"status": "completed"},
        {"title": "renamed"},
    ]

    race(len(changes), lambda n: repository.update("racer", task.taskId, changes[n], expected_version=None))

    current = repository.get("racer", task.taskId)
    assert (current.description, current.priority, current.tags, current.dueDate) == ("d", "high", ["t"], "2027-03-01")
    assert (current.status, current.title, current.version) == ("completed", "renamed", 1 + len(changes))


def test_export_streams_in_chunks_and_ends_with_the_count(stack: StackProcess, alice: Client) -> None:
    for i in range(300):
        create(alice, title=f"export {i} " + "x" * 150)
    response = requests.get(
        stack.info["export_url"] + "/tasks/export",
        headers=alice.headers,
        params={"sort": "createdAt"},
        stream=True,
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")

    chunks = [chunk for chunk in response.raw.read_chunked(decode_content=True) if chunk]
    first_lines = chunks[0].split(b"\n")
    lines = b"".join(chunks).decode().splitlines()

    assert len(chunks) > 1, "the export arrived in one piece: it was buffered, not streamed"
    assert json.loads(first_lines[0])["title"].startswith("export")
    assert b"_end" not in chunks[0]
    assert json.loads(lines[-1]) == {"_end": {"count": 300, "nextCursor": None}}
    assert len({json.loads(line)["taskId"] for line in lines[:-1]}) == 300


def test_export_json_format(stack: StackProcess, alice: Client) -> None:
    create(alice, title="json export")
    document = requests.get(
        stack.info["export_url"] + "/tasks/export", headers=alice.headers, params={"format": "json"}, timeout=30
    ).json()

    assert document["count"] == 1
    assert [task["title"] for task in document["tasks"]] == ["json export"]


def test_function_url_checks_the_token_itself(stack: StackProcess, stack_issuer: LocalIssuer) -> None:
    url = stack.info["function_url"]
    good = stack_issuer.bearer("url-user")

    created = requests.post(f"{url}/tasks", json={"title": "via function url"}, headers=good, timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["userId"] == "url-user"
    assert requests.put(f"{url}/tasks", json={}, headers=good, timeout=30).status_code == 405


@pytest.mark.parametrize(
    "kind", [None, "wrong_key", "wrong_issuer", "wrong_audience", "expired", "alg_none", "tampered"]
)
def test_every_entry_point_refuses_missing_and_bad_tokens(
    stack: StackProcess, stack_issuer: LocalIssuer, kind: str | None
) -> None:
    headers = {} if kind is None else {"Authorization": f"Bearer {bad_tokens(stack_issuer, 'victim')[kind]}"}
    entry_points = [
        ("GET", stack.info["api_url"] + "/tasks"),
        ("POST", stack.info["api_url"] + "/tasks"),
        ("GET", stack.info["export_url"] + "/tasks/export"),
        ("GET", stack.info["function_url"] + "/tasks"),
        ("POST", stack.info["function_url"] + "/tasks"),
    ]
    for method, url in entry_points:
        response = requests.request(method, url, headers=headers, json={"title": "x"}, timeout=30)
        assert response.status_code == 401, (method, url, response.text)
        assert "victim" not in response.text


def test_attachment_round_trip_through_s3(stack: StackProcess, alice: Client) -> None:
    task = create(alice, title="with a file")
    data = "hello, attachments ✓\n".encode()
    granted = alice.call(
        "POST",
        f"/tasks/{task['taskId']}/attachments",
        json={"fileName": "hello.txt", "contentType": "text/plain", "size": len(data)},
    )
    assert granted.status_code == 201, granted.text
    record = granted.json()
    upload = record["upload"]

    too_big = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("hello.txt", data + b"!")}, timeout=30
    )
    assert too_big.status_code >= 400
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("hello.txt", data)}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text
    stack.drain_events()

    path = f"/tasks/{task['taskId']}/attachments/{record['attachmentId']}"
    fetched = alice.call("GET", path).json()
    assert fetched["status"] == "available"
    download = requests.get(fetched["download"]["url"], timeout=30)
    assert download.status_code == 200
    assert download.content == data
    assert "hello.txt" in download.headers["Content-Disposition"]

    listed = alice.call("GET", f"/tasks/{task['taskId']}/attachments").json()["items"]
    assert [item["attachmentId"] for item in listed] == [record["attachmentId"]]
    assert alice.call("DELETE", path).status_code == 204
    assert alice.call("GET", path).status_code == 404
    assert requests.get(fetched["download"]["url"], timeout=30).status_code in (403, 404)  # S3 hides what is gone


def test_an_upload_by_a_sub_with_reserved_characters_becomes_available(
    stack: StackProcess, stack_issuer: LocalIssuer
) -> None:
    # Auth0's subs hold a `|`; any issuer's may hold `%`, `+`, `/`, spaces or `~`: the key still reads back
    owner = Client(stack.info["api_url"], stack_issuer, f"auth0|{uuid.uuid4()} a+b%7C/~41ü")
    task = create(owner, title="with a file")
    granted = owner.call(
        "POST",
        f"/tasks/{task['taskId']}/attachments",
        json={"fileName": "a.txt", "contentType": "text/plain", "size": 2},
    )
    assert granted.status_code == 201, granted.text
    record = granted.json()
    upload = record["upload"]

    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"hi")}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text
    stack.drain_events()

    fetched = owner.call("GET", f"/tasks/{task['taskId']}/attachments/{record['attachmentId']}").json()
    assert fetched["status"] == "available"
    assert requests.get(fetched["download"]["url"], timeout=30).content == b"hi"


def test_deleting_a_task_removes_its_uploaded_files(stack: StackProcess, alice: Client) -> None:
    task = create(alice, title="cascade")
    record = alice.call(
        "POST",
        f"/tasks/{task['taskId']}/attachments",
        json={"fileName": "a.txt", "contentType": "text/plain", "size": 3},
    ).json()
    requests.post(
        record["upload"]["url"], data=record["upload"]["fields"], files={"file": ("a.txt", b"abc")}, timeout=30
    )
    stack.drain_events()

    assert alice.call("DELETE", f"/tasks/{task['taskId']}").status_code == 204

    s3 = client("s3", stack.info["aws_endpoint"])
    versions = s3.list_object_versions(Bucket=stack.info["bucket_name"], Prefix=record["upload"]["fields"]["key"])
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []


def test_twelve_writers_on_one_version_over_http_exactly_one_wins(stack: StackProcess, alice: Client) -> None:
    if stack.info["dynamodb_endpoint"] == stack.info["aws_endpoint"]:
        pytest.skip("moto applies concurrent writes without isolation; races run on DynamoDB Local")
    created = alice.call("POST", "/tasks", json={"title": "race"})
    path, etag = f"/tasks/{created.json()['taskId']}", created.headers["ETag"]
    statuses: list[int] = []

    def write(n: int) -> None:
        writer = Client(alice.base, stack.issuer(), "unused")
        writer.headers = alice.headers
        statuses.append(
            writer.call("PATCH", path, json={"title": f"writer {n}"}, headers={"If-Match": etag}).status_code
        )

    race(12, write)

    assert sorted(statuses) == [200] + [412] * 11
    final = alice.call("GET", path).json()
    assert final["version"] == 2 and final["title"].startswith("writer ")
    assert len(workers_of(stack.info["pid"])) > 1, "the writers were served by more than one execution environment"
