"""Schemathesis, driven by `openapi.json`, against the `make run` stack: every entry point, with a valid token.

It generates valid and invalid requests from the document (and, where responses link operations, chains
create -> get/patch/put/delete), and checks that no response is a 5xx, that every response conforms to
the document (status code, content type, headers and body), that a request without the token is refused,
and that a created task can be read and a deleted one cannot. A fixed seed and example count keep the
run reproducible and bounded; `FUZZ_EXAMPLES` / `FUZZ_SEED` widen or vary it.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.http.query import RANGES
from tests.local_support import StackProcess, start_stack_process
from tools.openapi import DOCUMENT

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ignored_auth",  # the same request without the token: a 401, never data
        "ensure_resource_availability",  # what was created can be read at once
        "use_after_free",  # what was deleted is gone
    )
)
EXPORT_PATHS = "^/(healthz|tasks/export)$"
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "25")
SEED = os.environ.get("FUZZ_SEED", "20261126")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    process = start_stack_process(state_dir=tmp_path_factory.mktemp("fuzz-stack"))
    yield process
    process.stop()


def schemathesis(
    stack: StackProcess,
    base_url: str,
    tmp_path: Path,
    *selection: str,
    document: Path = DOCUMENT,
    checks: str = CHECKS,
) -> subprocess.CompletedProcess[str]:
    token = stack.issuer().token("fuzzer", expires_in=3600)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(document),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        checks,
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--no-color",
        *selection,
    ]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)  # its cache: tmp_path


@pytest.mark.parametrize("entry_point", ["api_url", "function_url"])
def test_the_crud_entry_points_conform_to_the_document(stack: StackProcess, tmp_path: Path, entry_point: str) -> None:
    # Without Idempotency-Key: a key the fuzzer reuses replays the first 201, whose task a later step may
    # have deleted, which ensure_resource_availability takes for a lost write (tests/test_idempotency.py).
    document = without_parameters(tmp_path, {("header", "Idempotency-Key")})
    run = schemathesis(
        stack, stack.info[entry_point], tmp_path, "--exclude-path-regex", EXPORT_PATHS, document=document
    )

    assert run.returncode == 0, run.stdout + run.stderr


def test_the_export_conforms_to_the_document(stack: StackProcess, tmp_path: Path) -> None:
    phases = ("--phases", "examples,coverage,fuzzing")  # no links between its two operations: nothing stateful
    run = schemathesis(stack, stack.info["export_url"], tmp_path, "--include-path-regex", EXPORT_PATHS, *phases)

    assert run.returncode == 0, run.stdout + run.stderr


# What no document can describe: a cursor is signed, an ETag names a version, a reused key replays, and
# a range's bounds must not cross (said in words: one bound of each range is left out).
UNDESCRIBABLE_PARAMETERS = {
    ("query", "cursor"),
    ("header", "If-Match"),
    ("header", "Idempotency-Key"),
    *(("query", after.parameter) for after, _ in RANGES),
}


def without_parameters(tmp_path: Path, left_out: set[tuple[str, str]]) -> Path:
    """A copy of the document without the parameters `left_out` ((location, name) pairs)."""
    document = json.loads(DOCUMENT.read_text())
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    parameter
                    for parameter in operation["parameters"]
                    if (parameter.get("in"), parameter.get("name")) not in left_out
                ]
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("entry_point", "paths"), [("api_url", "--exclude-path-regex"), ("export_url", "--include-path-regex")]
)
def test_every_request_the_document_allows_is_accepted(
    stack: StackProcess, tmp_path: Path, entry_point: str, paths: str
) -> None:
    """The document is as strict as the API: no request it allows is refused (schemathesis's ST202)."""
    document = without_parameters(tmp_path, UNDESCRIBABLE_PARAMETERS)
    phases = ("--phases", "examples,coverage,fuzzing")
    checks = "not_a_server_error,positive_data_acceptance"
    run = schemathesis(
        stack, stack.info[entry_point], tmp_path, paths, EXPORT_PATHS, *phases, document=document, checks=checks
    )

    assert run.returncode == 0, run.stdout + run.stderr
