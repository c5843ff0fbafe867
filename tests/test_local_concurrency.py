"""Stopping the `make run` stack, even abruptly, leaves none of its worker processes behind."""

import signal
from pathlib import Path

import pytest
import requests

from tests.local_support import exited, start_stack_process, workers_of

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_stopping_the_stack_leaves_no_worker_process(tmp_path: Path, how: signal.Signals) -> None:
    stack = start_stack_process(state_dir=tmp_path)
    try:
        headers = stack.issuer().bearer("alice")
        assert requests.get(f"{stack.info['api_url']}/tasks", headers=headers, timeout=30).status_code == 200
        workers = workers_of(stack.info["pid"])
        assert workers, "the request started a worker"
        if stack.process is not None:
            stack.process.send_signal(how)
            stack.process.wait(timeout=30)
    finally:
        stack.stop()

    assert all(exited(pid) for pid in workers)
