"""A real browser (headless Chromium from Debian, driven by Selenium) against the `make run` stack.

The docs page's "Try it out", and `fetch` calls from a page on another origin to the HTTP API, the CRUD
function URL, the streaming export and the presigned POST to S3: a browser refuses each of these when the
CORS configuration is wrong. A page on an origin the stack does not allow is refused by all of them.
Nothing downloads a browser: `make browser` installs the Debian packages `chromium` and `chromium-driver`.
"""

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.wrappers import Request

from local.events import Response
from local.server import HttpServer
from tests.local_support import StackProcess, start_stack_process

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT_SECONDS = 30  # how long the browser may take to render or answer, not a check of speed


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        message = f"no headless browser here ({', '.join(missing)} missing): `make browser` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    process = start_stack_process(state_dir=tmp_path_factory.mktemp("browser-stack"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def foreign_origin() -> Iterator[str]:
    """A page on an origin the stack's CORS configuration does not name."""

    def page(request: Request) -> Response:
        return Response(b"<!doctype html><title>elsewhere</title>", 200, [("content-type", "text/html")])

    server = HttpServer(page, name="foreign origin").start()
    yield server.url.replace("127.0.0.1", "localhost")
    server.stop()


def run_in_page(browser: WebDriver, page_url: str, script: str, *arguments: Any) -> Any:
    """Open `page_url`, then run `script` (an async function body of `args`) there and return its result."""
    browser.get(page_url)
    wrapped = (
        f"const done = arguments[arguments.length - 1]; const args = arguments[0];\n"
        f"(async () => {{ {script} }})().then(done, (error) => done({{error: String(error)}}));"
    )
    return browser.execute_async_script(wrapped, list(arguments))


CALLS = """
const [api, functionUrl, exportUrl, token] = args;
const auth = {"Authorization": "Bearer " + token};
const json = {...auth, "Content-Type": "application/json"};
const outcome = async (call) => { try { return await call(); } catch (error) { return {refused: String(error)}; } };
const results = {};
results.api = await outcome(async () => {
  const body = JSON.stringify({title: "browser"});
  const created = await fetch(api + "/tasks", {
    method: "POST", headers: {...json, "Idempotency-Key": crypto.randomUUID()}, body});
  const task = await created.json();
  const etag = created.headers.get("ETag");
  const patched = await fetch(api + "/tasks/" + task.taskId, {
    method: "PATCH", headers: {...json, "If-Match": etag}, body: JSON.stringify({status: "completed"})});
  return {status: created.status, location: created.headers.get("Location"), etag, taskId: task.taskId,
          patched: patched.status, patchedStatus: (await patched.json()).status};
});
results.functionUrl = await outcome(async () => {
  const created = await fetch(functionUrl + "/tasks", {
    method: "POST", headers: {...json, "Idempotency-Key": crypto.randomUUID()}, body: JSON.stringify({title: "url"})});
  const listed = await fetch(functionUrl + "/tasks?limit=5", {headers: auth});
  return {created: created.status, status: listed.status, count: (await listed.json()).items.length};
});
results.export = await outcome(async () => {
  const response = await fetch(exportUrl + "/tasks/export", {headers: auth});
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "", chunks = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    chunks += 1;
    text += decoder.decode(value, {stream: true});
  }
  return {status: response.status, type: response.headers.get("Content-Type"), chunks,
          lines: text.trim().split("\\n").map((line) => JSON.parse(line))};
});
results.upload = await outcome(async () => {
  const content = "hello from a browser";
  const created = await fetch(api + "/tasks", {method: "POST", headers: json, body: JSON.stringify({title: "upload"})});
  const task = await created.json();
  const granted = await fetch(api + "/tasks/" + task.taskId + "/attachments", {
    method: "POST", headers: json,
    body: JSON.stringify({fileName: "hello.txt", contentType: "text/plain", size: content.length})});
  const attachment = await granted.json();
  const form = new FormData();
  for (const [name, value] of Object.entries(attachment.upload.fields)) form.append(name, value);
  form.append("file", new Blob([content], {type: "text/plain"}), "hello.txt");
  const uploaded = await fetch(attachment.upload.url, {method: "POST", body: form});
  return {granted: granted.status, status: uploaded.status, taskId: task.taskId, attachmentId: attachment.attachmentId};
});
return results;
"""


def cross_origin_calls(browser: WebDriver, stack: StackProcess, page_url: str, token: str) -> dict[str, Any]:
    info = stack.info
    results: dict[str, Any] = run_in_page(
        browser, page_url, CALLS, info["api_url"], info["function_url"], info["export_url"], token
    )
    return results


def test_the_docs_page_is_on_an_origin_the_stack_allows(stack: StackProcess) -> None:
    page = requests.get(stack.info["docs_url"], timeout=10)
    document = requests.get(stack.info["docs_url"] + "/openapi.json", timeout=10).json()

    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert [server["url"] for server in document["servers"][:2]] == [stack.info["api_url"], stack.info["function_url"]]


@pytest.mark.parametrize(
    ("operation_id", "server"),
    [("tasks-listTasks", "api_url"), ("tasks-listTasks", "function_url"), ("export-exportTasks", "export_url")],
)
def test_try_it_out_on_the_docs_page(browser: WebDriver, stack: StackProcess, operation_id: str, server: str) -> None:
    # given a task of alice, the user whose token the docs page holds
    title = f"try it out {uuid.uuid4()}"
    created = requests.post(
        stack.info["api_url"] + "/tasks", json={"title": title}, headers=stack.issuer().bearer("alice"), timeout=10
    )
    assert created.status_code == 201

    # when "Try it out" runs the operation against that server
    browser.get(stack.info["docs_url"] + "/")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    operation = f"#operations-{operation_id}"
    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .opblock-summary"))).click()
    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .try-out__btn"))).click()
    servers = browser.find_elements(By.CSS_SELECTOR, f"{operation} .servers select") or browser.find_elements(
        By.CSS_SELECTOR, ".scheme-container .servers select"
    )
    Select(servers[0]).select_by_value(stack.info[server])
    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .execute"))).click()
    status = wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, f"{operation} .live-responses-table tr.response .response-col_status")
        )
    )

    # then the browser got the tasks, with that task among them
    body = browser.find_element(By.CSS_SELECTOR, f"{operation} .live-responses-table .microlight").text
    assert status.text.strip() == "200"
    assert title in [task.get("title") for task in tasks_in(body)]


def tasks_in(body: str) -> list[dict[str, Any]]:
    """The tasks of a GET /tasks page (JSON), or of an NDJSON export (its last line is the `_end` record)."""
    try:
        page: list[dict[str, Any]] = json.loads(body)["items"]
        return page
    except json.JSONDecodeError:
        raw = body.split("Raw result:", 1)[-1]  # Swagger UI tries NDJSON as JSON first, then shows it raw
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert "_end" in lines[-1], body
    return lines[:-1]


def test_cross_origin_calls_from_an_allowed_origin(browser: WebDriver, stack: StackProcess) -> None:
    results = cross_origin_calls(browser, stack, stack.info["docs_url"] + "/", stack.issuer().token("carol"))

    api, function_url, export, upload = results["api"], results["functionUrl"], results["export"], results["upload"]
    assert api["status"] == 201 and api["location"] == f"/tasks/{api['taskId']}"
    assert api["etag"] and api["patched"] == 200 and api["patchedStatus"] == "completed"
    assert function_url == {"created": 201, "status": 200, "count": 2}
    assert export["status"] == 200 and export["type"].startswith("application/x-ndjson")
    assert api["taskId"] in [line.get("taskId") for line in export["lines"][:-1]]
    assert export["lines"][-1] == {"_end": {"count": 2, "nextCursor": None}}
    assert upload["granted"] == 201 and upload["status"] in (200, 201, 204)
    stack.drain_events()
    attachment = requests.get(
        f"{stack.info['api_url']}/tasks/{upload['taskId']}/attachments/{upload['attachmentId']}",
        headers=stack.issuer().bearer("carol"),
        timeout=10,
    ).json()
    assert attachment["status"] == "available"


def test_cross_origin_calls_from_an_origin_not_allowed_are_refused(
    browser: WebDriver, stack: StackProcess, foreign_origin: str
) -> None:
    results = cross_origin_calls(browser, stack, foreign_origin + "/", stack.issuer().token("mallory"))

    assert {name: "refused" in result for name, result in results.items()} == {
        "api": True,
        "functionUrl": True,
        "export": True,
        "upload": True,
    }, results
