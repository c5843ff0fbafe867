"""The streaming function's app (`GET /tasks/export`) through Starlette's test client, backed by moto."""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.domain.models import PUBLIC_FIELDS
from core.services import tasks as service
from core.wiring import build_services
from local.issuer import LocalIssuer
from streaming.app import create_app
from streaming.export import TRAILER_RESERVE_BYTES, WallClock
from tests.bad_tokens import BAD_TOKEN_KINDS, bad_tokens
from tests.support import ALICE, BOB, Backend, Invoke, export_settings

LoadTasks = Callable[[str, Iterable[dict[str, Any]]], list[str]]
NDJSON = "application/x-ndjson"
PROBLEM = "application/problem+json"


# --- helpers -------------------------------------------------------------------------------------


def newest_first(ids: list[str]) -> list[str]:
    return sorted(ids, reverse=True)  # task ids are time-ordered; the default sort is newest first


def app_client(backend: Backend, clock: WallClock = time.time, **changes: Any) -> TestClient:
    """The export app on the test's backend, with its settings changed only where the test says."""
    settings = export_settings(**{"jwks_url": backend.settings.jwks_url, **changes})
    export = backend.function("ExportFunction")
    services = build_services(settings, export.dynamodb, lambda: export.s3)
    return TestClient(create_app(settings, services, clock), raise_server_exceptions=False)


@pytest.fixture
def load_tasks(backend: Backend) -> LoadTasks:
    return backend.load_tasks


class SteppingClock:
    """Epoch seconds that move on by `step` every time they are read (no sleeping, no wall clock)."""

    def __init__(self, step: float = 1.0, start: float = 1_900_000_000.0):
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def export_lines(
    client: TestClient, issuer: LocalIssuer, user: str = ALICE, headers: dict[str, str] | None = None, **params: str
) -> list[dict[str, Any]]:
    """One NDJSON export response, each line parsed."""
    with client.stream("GET", "/tasks/export", params=params, headers={**issuer.bearer(user), **(headers or {})}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"] == NDJSON
        assert r.headers["cache-control"] == "no-store"
        return [json.loads(line) for line in r.iter_lines()]


def export_all(client: TestClient, issuer: LocalIssuer, user: str = ALICE, **params: str) -> tuple[list[str], int]:
    """Follow nextCursor to the end: every task id in order, and how many responses it took."""
    ids: list[str] = []
    responses = 0
    cursor: str | None = params.pop("cursor", None)
    while True:
        *tasks, last = export_lines(client, issuer, user, **params, **({"cursor": cursor} if cursor else {}))
        responses += 1
        assert list(last) == ["_end"], last
        assert last["_end"]["count"] == len(tasks)
        assert all("_end" not in task and "_error" not in task for task in tasks)
        ids += [task["taskId"] for task in tasks]
        cursor = last["_end"]["nextCursor"]
        if cursor is None:
            return ids, responses
        assert tasks, "a response that stops early has written at least one task"


def get_tasks_ids(invoke: Invoke, user: str, query: dict[str, str]) -> list[str]:
    """What GET /tasks (the CRUD function) lists for the same filters, every page walked."""
    ids: list[str] = []
    cursor = None
    while True:
        page = invoke(
            "list-tasks", user=user, query={**query, "limit": "100", **({"cursor": cursor} if cursor else {})}
        )
        assert page.status == 200, page
        ids += [task["taskId"] for task in page.json()["items"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            return ids


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    return body


@pytest.fixture
def client(backend: Backend) -> Iterator[TestClient]:
    with app_client(backend) as test_client:
        yield test_client


@pytest.fixture
def failing_queries(backend: Backend) -> Callable[[int, str], None]:
    """Make DynamoDB Query calls fail with an AWS error code from the n-th call on (at the client's edge)."""
    calls = 0

    def fail_from(call: int, code: str) -> None:
        def before_query(**_: Any) -> tuple[Any, dict[str, Any]] | None:
            nonlocal calls
            calls += 1
            if calls < call:
                return None
            error = {"Code": code, "Message": f"injected {code} from arn:aws:dynamodb:us-east-1:123:table/secret"}
            return SimpleNamespace(status_code=400, headers={}), {"Error": error, "ResponseMetadata": {}}

        backend.function("ExportFunction").dynamodb.meta.events.register("before-call.dynamodb.Query", before_query)

    return fail_from


# --- the happy path ------------------------------------------------------------------------------


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ndjson_export_is_one_task_per_line_then_end(
    client: TestClient, issuer: LocalIssuer, load_tasks: LoadTasks
) -> None:
    ids = load_tasks(ALICE, [{"tags": ["a"], "dueDate": "2030-01-01"}, {}, {"description": "ünïcode ✓"}])

    *tasks, last = export_lines(client, issuer)

    assert [task["taskId"] for task in tasks] == newest_first(ids)
    assert last == {"_end": {"count": 3, "nextCursor": None}}
    by_id = {task["taskId"]: task for task in tasks}
    assert by_id[ids[2]]["description"] == "ünïcode ✓"
    assert by_id[ids[0]]["tags"] == ["a"] and by_id[ids[0]]["dueDate"] == "2030-01-01"
    assert list(by_id[ids[1]]) == [row.name for row in PUBLIC_FIELDS]  # the field table's, in its order


def test_json_export_is_one_document(client: TestClient, issuer: LocalIssuer, load_tasks: LoadTasks) -> None:
    ids = load_tasks(ALICE, [{}] * 5)

    response = client.get("/tasks/export", params={"format": "json"}, headers=issuer.bearer(ALICE))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert [task["taskId"] for task in document["tasks"]] == newest_first(ids)
    assert document["count"] == 5
    assert document["nextCursor"] is None


@pytest.mark.parametrize("export_format", ["ndjson", "json"])
def test_empty_export(client: TestClient, issuer: LocalIssuer, export_format: str) -> None:
    response = client.get("/tasks/export", params={"format": export_format}, headers=issuer.bearer(ALICE))

    assert response.status_code == 200
    if export_format == "json":
        assert response.json() == {"tasks": [], "count": 0, "nextCursor": None}
    else:
        assert response.text == '{"_end":{"count":0,"nextCursor":null}}\n'


FILTERS = [
    {},
    {"status": "in_progress"},
    {"priority": "high"},
    {"tag": "home"},
    {"dueBefore": "2030-01-10T00:00:00Z"},
    {"dueAfter": "2030-01-05", "priority": "low"},
    {"status": "pending", "tag": "work"},
    {"sort": "dueDate"},
    {"sort": "dueDate", "dueAfter": "2030-01-04", "dueBefore": "2030-01-20"},
    {"sort": "dueDate", "status": "completed"},
    {"sort": "createdAt", "status": "cancelled", "priority": "urgent"},
]


@pytest.mark.parametrize("query", FILTERS, ids=lambda query: "&".join(f"{k}={v}" for k, v in query.items()) or "all")
def test_filters_match_get_tasks(
    client: TestClient, issuer: LocalIssuer, invoke: Invoke, query: dict[str, str], load_tasks: LoadTasks
) -> None:
    tags = [["work"], ["home"], ["work", "home"], []]
    specs = [
        {
            "status": ("pending", "in_progress", "completed", "cancelled")[n % 4],
            "priority": ("low", "medium", "high", "urgent")[n // 2 % 4],
            "tags": tags[n % 4 if n % 5 else 2],
            **({"dueDate": f"2030-01-{28 - n:02d}"} if n % 5 != 4 else {}),
        }
        for n in range(28)
    ]
    load_tasks(ALICE, specs)
    load_tasks(BOB, specs)

    exported, _ = export_all(client, issuer, **query)

    assert exported == get_tasks_ids(invoke, ALICE, query)
    assert exported, "every filter above matches some tasks"


def test_several_thousand_tasks_each_exactly_once(
    client: TestClient, issuer: LocalIssuer, load_tasks: LoadTasks
) -> None:
    ids = load_tasks(ALICE, [{"tags": ["bulk"]}] * 3000)

    *tasks, last = export_lines(client, issuer)

    assert last == {"_end": {"count": 3000, "nextCursor": None}}
    assert [task["taskId"] for task in tasks] == newest_first(ids)


def test_a_get_tasks_cursor_resumes_the_export(
    client: TestClient, issuer: LocalIssuer, invoke: Invoke, load_tasks: LoadTasks
) -> None:
    ids = newest_first(load_tasks(ALICE, [{"priority": "high"}] * 7))
    page = invoke("list-tasks", user=ALICE, query={"priority": "high", "limit": "3"}).json()

    exported, _ = export_all(client, issuer, priority="high", cursor=page["nextCursor"])

    assert exported == ids[3:]


# --- stopping early and resuming -----------------------------------------------------------------


def test_deadline_stop_then_resumes_return_every_task_once(
    issuer: LocalIssuer, load_tasks: LoadTasks, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given pages of 2 tasks, a 15 s function timeout, a 10 s safety margin and a clock that moves 1 s per reading
    monkeypatch.setattr(service, "SCROLL_PAGE_SIZE", 2)
    ids = load_tasks(ALICE, [{}] * 40)
    timing = {"export_timeout_seconds": 15.0, "export_safety_seconds": 10.0}

    with app_client(backend, SteppingClock(), **timing) as client:
        exported, responses = export_all(client, issuer)

    assert exported == newest_first(ids)
    assert responses > 3


def test_lambda_deadline_from_the_web_adapter_is_honoured(
    issuer: LocalIssuer, load_tasks: LoadTasks, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given pages of 2 tasks and the adapter's invocation context saying 5 s are left, under the 10 s margin
    monkeypatch.setattr(service, "SCROLL_PAGE_SIZE", 2)
    ids = load_tasks(ALICE, [{}] * 5)
    clock = SteppingClock(step=0.0)
    context = json.dumps({"request_id": "req-1", "deadline": int((clock.now + 5) * 1000), "invoked_function_arn": "x"})

    with app_client(backend, clock) as client:
        first = export_lines(client, issuer, headers={"x-amzn-lambda-context": context})
        exported, _ = export_all(client, issuer, cursor=first[-1]["_end"]["nextCursor"])

    # Then the response holds one page (the minimum, so resuming always progresses)
    assert [task["taskId"] for task in first[:-1]] == newest_first(ids)[:2]
    assert first[-1]["_end"]["count"] == 2
    assert [task["taskId"] for task in first[:-1]] + exported == newest_first(ids)


def test_a_filter_that_matches_nothing_still_ends_in_time_with_a_cursor_that_moves_forward(
    issuer: LocalIssuer, load_tasks: LoadTasks, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 60 tasks read 5 per page, the one rare tag on the oldest, and time for about two pages a response
    monkeypatch.setattr(service, "SCROLL_PAGE_SIZE", 5)
    rare = load_tasks(ALICE, [{"tags": ["rare"]}])
    load_tasks(ALICE, [{"tags": ["common"]}] * 59)
    timing = {"export_timeout_seconds": 12.0, "export_safety_seconds": 10.0}
    cursors: list[str] = []
    found: list[str] = []

    with app_client(backend, SteppingClock(), **timing) as client:
        cursor = None
        while True:
            *tasks, last = export_lines(client, issuer, tag="rare", **({"cursor": cursor} if cursor else {}))
            found += [task["taskId"] for task in tasks]
            cursor = last["_end"]["nextCursor"]
            if cursor is None:
                break
            assert cursor not in cursors, "a resume cursor never repeats"
            cursors.append(cursor)

    # Then most responses end early with no task and a cursor, and the walk ends with the one match
    assert found == rare
    assert len(cursors) >= 3


@pytest.mark.parametrize("context", ["not json", "[]", '{"deadline": "soon"}', '{"deadline": 0}'])
def test_an_unusable_lambda_context_falls_back_to_the_timeout(
    client: TestClient, issuer: LocalIssuer, context: str, load_tasks: LoadTasks
) -> None:
    ids = load_tasks(ALICE, [{}] * 3)

    *tasks, last = export_lines(client, issuer, headers={"x-amzn-lambda-context": context})

    assert [task["taskId"] for task in tasks] == newest_first(ids)
    assert last == {"_end": {"count": 3, "nextCursor": None}}


@pytest.mark.parametrize("export_format", ["ndjson", "json"])
def test_byte_budget_stop_then_resumes_return_every_task_once(
    aws: None, issuer: LocalIssuer, export_format: str, load_tasks: LoadTasks, backend: Backend
) -> None:
    ids = load_tasks(ALICE, [{"description": "x" * 400}] * 9)
    max_bytes = TRAILER_RESERVE_BYTES + 1500  # about two tasks of ~700 bytes
    exported: list[str] = []
    bodies: list[bytes] = []
    cursor = None

    with app_client(backend, export_max_bytes=max_bytes) as client:
        while True:
            params = {"format": export_format, **({"cursor": cursor} if cursor else {})}
            response = client.get("/tasks/export", params=params, headers=issuer.bearer(ALICE))
            assert response.status_code == 200
            bodies.append(response.content)
            if export_format == "json":
                document = response.json()
                tasks, end = document["tasks"], {"count": document["count"], "nextCursor": document["nextCursor"]}
            else:
                *tasks, last = [json.loads(line) for line in response.iter_lines()]
                end = last["_end"]
            assert end["count"] == len(tasks) >= 1
            exported += [task["taskId"] for task in tasks]
            cursor = end["nextCursor"]
            if cursor is None:
                break

    assert exported == newest_first(ids)
    assert len(bodies) >= 4
    assert all(len(body) <= max_bytes for body in bodies)


def test_a_budget_smaller_than_one_task_still_progresses(
    aws: None, issuer: LocalIssuer, load_tasks: LoadTasks, backend: Backend
) -> None:
    ids = load_tasks(ALICE, [{}] * 4)

    with app_client(backend, export_max_bytes=100) as client:
        exported, responses = export_all(client, issuer)

    assert exported == newest_first(ids)
    assert responses == 4


# --- failures ------------------------------------------------------------------------------------


def test_throttled_first_page_is_503_before_any_byte(
    client: TestClient, issuer: LocalIssuer, failing_queries: Callable[[int, str], None], load_tasks: LoadTasks
) -> None:
    load_tasks(ALICE, [{}] * 3)
    failing_queries(1, "ProvisionedThroughputExceededException")

    response = client.get("/tasks/export", headers=issuer.bearer(ALICE))

    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"


def test_unexpected_failure_before_any_byte_is_500_with_correlation_id(
    aws: None, issuer: LocalIssuer, failing_queries: Callable[[int, str], None], load_tasks: LoadTasks, backend: Backend
) -> None:
    load_tasks(ALICE, [{}] * 3)
    failing_queries(1, "ValidationException")

    with app_client(backend) as client:
        response = client.get("/tasks/export", headers={**issuer.bearer(ALICE), "x-amzn-request-id": "req-42"})

    body = assert_problem(response, 500)
    assert body["correlationId"] == "req-42"
    assert "Validation" not in response.text and "arn:aws" not in response.text


@pytest.mark.parametrize("export_format", ["ndjson", "json"])
def test_throttling_after_the_first_page_ends_with_an_error_record(
    client: TestClient,
    issuer: LocalIssuer,
    failing_queries: Callable[[int, str], None],
    monkeypatch: pytest.MonkeyPatch,
    export_format: str,
    load_tasks: LoadTasks,
) -> None:
    # Given pages of 10 tasks and a table that throttles from the second page on
    monkeypatch.setattr(service, "SCROLL_PAGE_SIZE", 10)
    ids = load_tasks(ALICE, [{}] * 25)
    failing_queries(2, "ProvisionedThroughputExceededException")

    response = client.get("/tasks/export", params={"format": export_format}, headers=issuer.bearer(ALICE))

    assert response.status_code == 200  # the status went out with the first byte
    if export_format == "json":
        document = response.json()
        tasks, error = document["tasks"], document["_error"]
        assert "count" not in document and "nextCursor" not in document
    else:
        *tasks, last = [json.loads(line) for line in response.iter_lines()]
        assert list(last) == ["_error"]
        error = last["_error"]
        assert all("_end" not in task for task in tasks)
    assert [task["taskId"] for task in tasks] == newest_first(ids)[:10]
    assert error["status"] == 503
    assert error["type"].endswith("/service-unavailable")


def test_unexpected_failure_midway_has_a_correlation_id_and_no_internals(
    client: TestClient,
    issuer: LocalIssuer,
    failing_queries: Callable[[int, str], None],
    monkeypatch: pytest.MonkeyPatch,
    load_tasks: LoadTasks,
) -> None:
    monkeypatch.setattr(service, "SCROLL_PAGE_SIZE", 10)
    load_tasks(ALICE, [{}] * 15)
    failing_queries(2, "ValidationException")
    context = json.dumps({"request_id": "lambda-req-7", "deadline": 0})

    *tasks, last = export_lines(client, issuer, headers={"x-amzn-lambda-context": context})

    assert len(tasks) == 10
    assert last["_error"]["status"] == 500
    assert last["_error"]["correlationId"] == "lambda-req-7"
    assert "Validation" not in json.dumps(last) and "arn:aws" not in json.dumps(last)


# --- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"priority": ""},
        {"sort": "title"},
        {"tag": "x" * 51},
        {"dueBefore": "next week"},
        {"dueAfter": "2030-01-01T10:00:00"},
        {"format": "csv"},
        {"limit": "10"},
        {"owner": BOB},
        {"cursor": "garbage"},
        {"cursor": "eyJrIjp7fX0.c2lnbmF0dXJl"},
        [("status", "pending"), ("status", "completed")],
    ],
    ids=str,
)
def test_bad_filters_are_400_before_any_byte(
    client: TestClient, issuer: LocalIssuer, params: Any, load_tasks: LoadTasks
) -> None:
    load_tasks(ALICE, [{}])

    response = client.get("/tasks/export", params=params, headers=issuer.bearer(ALICE))

    assert_problem(response, 400)


def test_a_cursor_is_bound_to_its_filters_and_its_owner(
    client: TestClient, issuer: LocalIssuer, invoke: Invoke, load_tasks: LoadTasks
) -> None:
    load_tasks(ALICE, [{"status": "completed"}] * 3)
    cursor = invoke("list-tasks", user=ALICE, query={"status": "completed", "limit": "1"}).json()["nextCursor"]
    assert cursor

    other_filters = client.get("/tasks/export", params={"cursor": cursor}, headers=issuer.bearer(ALICE))
    other_owner = client.get(
        "/tasks/export", params={"status": "completed", "cursor": cursor}, headers=issuer.bearer(BOB)
    )

    assert_problem(other_filters, 400)
    assert_problem(other_owner, 400)


# --- who may export what -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_tokens_are_401_before_any_data(
    client: TestClient, issuer: LocalIssuer, kind: str, load_tasks: LoadTasks
) -> None:
    load_tasks(ALICE, [{"title": "secret"}])

    response = client.get("/tasks/export", headers={"authorization": f"Bearer {bad_tokens(issuer, ALICE)[kind]}"})

    assert_problem(response, 401)
    assert "bearer" in response.headers["www-authenticate"].lower()
    assert "secret" not in response.text


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic YWxpY2U6c2VjcmV0"])
def test_missing_token_is_401(client: TestClient, header: str | None) -> None:
    response = client.get("/tasks/export", headers={} if header is None else {"authorization": header})

    assert_problem(response, 401)


def test_unreachable_jwks_is_503_with_retry_after(backend: Backend, issuer: LocalIssuer) -> None:
    with app_client(backend, jwks_url="http://127.0.0.1:9/.well-known/jwks.json") as client:
        response = client.get("/tasks/export", headers=issuer.bearer(ALICE))

    assert_problem(response, 503)
    assert "retry-after" in response.headers


def test_another_users_tasks_never_appear(client: TestClient, issuer: LocalIssuer, load_tasks: LoadTasks) -> None:
    alice = load_tasks(ALICE, [{"tags": ["shared"]}] * 4)
    bob = load_tasks(BOB, [{"tags": ["shared"]}] * 3)

    alice_exported, _ = export_all(client, issuer, ALICE, tag="shared")
    bob_exported, _ = export_all(client, issuer, BOB, tag="shared")

    assert alice_exported == newest_first(alice)
    assert bob_exported == newest_first(bob)


def test_other_methods_and_paths_are_problems(client: TestClient, issuer: LocalIssuer) -> None:
    assert_problem(client.post("/tasks/export", headers=issuer.bearer(ALICE)), 405)
    head = client.head("/tasks/export", headers=issuer.bearer(ALICE))
    assert (head.status_code, head.headers["allow"]) == (405, "GET")
    assert_problem(client.get("/tasks", headers=issuer.bearer(ALICE)), 404)
