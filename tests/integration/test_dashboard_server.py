"""`sp-scheduler web` as a real process: it serves, and a slow database never holds up other requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import System
from tests.support.processes import ManagedProcess, start_web
from tests.support.proxy import CuttableProxy, through


@pytest.fixture
def web(system: System, database_url: str, proxy: CuttableProxy) -> Iterator[tuple[ManagedProcess, str]]:
    """The dashboard on a free port, its database reached through `proxy`."""
    system.configure(
        [{"name": "nightly", "extension": "testing", "job": "noop", "schedule": "0 0 3 * * *", "enabled": True}]
    )
    env = system.env(SP_DATABASE_URL=through(database_url, proxy))
    process, base = start_web([], env, system.log_dir)
    yield process, base
    process.stop()


def test_the_web_command_serves_on_loopback_and_prints_its_address(web: tuple[ManagedProcess, str]) -> None:
    process, base = web
    assert f"dashboard: {base}/" in process.output()
    jobs = httpx.get(f"{base}/api/v1/jobs", timeout=5).json()
    assert "nightly" in [job["name"] for job in jobs["jobs"]]


def test_a_request_waiting_on_postgres_does_not_hold_up_the_others(
    web: tuple[ManagedProcess, str], proxy: CuttableProxy
) -> None:
    _, base = web
    proxy.freeze()  # Postgres goes silent: the next ledger read waits
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(httpx.get(f"{base}/api/v1/runs", timeout=60).status_code), daemon=True
    )
    waiting.start()
    try:
        # While that request waits on the database, the event loop still answers everything else.
        for _ in range(3):
            assert httpx.get(f"{base}/api/v1/openapi.json", timeout=2).status_code == 200
        assert waiting.is_alive() and not answers
    finally:
        proxy.thaw()
    waiting.join(timeout=30)
    assert answers == [200]
