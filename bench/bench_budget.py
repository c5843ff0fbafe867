"""Bounded work per request: what a listing and an export read when their filter matches nothing.

    make bench        (or .venv/bin/python bench/bench_budget.py [--tasks 10000])

One user with N tasks, none tagged `rare`. GET /tasks?tag=rare goes through the CRUD handler, following
nextCursor to the end; the export reads the same filter page by page through the streaming function's
source. For each request it counts DynamoDB calls and items read, and prints the worst request next to
the budget. It asserts nothing.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Bench")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from core.data import tasks as data_tasks  # noqa: E402 - after the path set-up above
from core.domain.listing import ListQuery  # noqa: E402
from core.services import tasks as service_tasks  # noqa: E402
from core.wiring import build_services  # noqa: E402
from tests.support import ENVIRONMENT, TABLE, Backend, create_table, crud_settings  # noqa: E402

os.environ.update(ENVIRONMENT)  # the functions' variables: importing a handler cold-starts as it does when deployed

USER = "bench-user"


class Reads:
    """DynamoDB Query calls and items read, counted at the client."""

    def __init__(self, client: Any):
        self.calls = 0
        self.items = 0
        client.meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        self.items += int(parsed.get("ScannedCount", 0))

    def take(self) -> tuple[int, int]:
        taken = (self.calls, self.items)
        self.calls = self.items = 0
        return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        backend = Backend(crud_settings("http://127.0.0.1:9/jwks"))
        started = time.perf_counter()
        backend.load_tasks(USER, ({"tags": ["common"], "priority": "low"} for _ in range(args.tasks)))
        print(f"loaded {args.tasks:,} tasks in {time.perf_counter() - started:.1f} s; none is tagged rare")
        reads = Reads(backend.dynamodb)

        per_request = []
        cursor = None
        while True:
            query = {"tag": "rare", "limit": "20", **({"cursor": cursor} if cursor else {})}
            page = backend.invoke("list-tasks", user=USER, query=query).json()
            per_request.append(reads.take())
            cursor = page["nextCursor"]
            if cursor is None:
                break
        worst_calls = max(calls for calls, _ in per_request)
        worst_items = max(items for _, items in per_request)
        print(f"GET /tasks?tag=rare: {len(per_request)} requests to walk every cursor, each one page of 0 tasks")
        print(
            f"  worst request: {worst_calls} Query calls (budget {data_tasks.LIST_MAX_CALLS}), "
            f"{worst_items:,} items read (budget {data_tasks.LIST_READ_BUDGET:,})"
        )

        services = build_services(backend.settings, backend.dynamodb, lambda: backend.s3)
        pages = services.tasks.export_pages(USER, ListQuery(filters={"tag": "rare"}))
        per_page = []
        for page in pages:
            per_page.append((reads.take(), len(page.rows)))
        worst = max(items for (_, items), _ in per_page)
        print(
            f"export ?tag=rare: {len(per_page)} DynamoDB pages, one Query call each, "
            f"at most {worst:,} items read per page ({service_tasks.SCROLL_PAGE_SIZE:,} asked)"
        )
        print("  the export checks its deadline after every page, so a response ends in time with a cursor")
        print("  past the last page it read, whether or not anything matched")


if __name__ == "__main__":
    main()
