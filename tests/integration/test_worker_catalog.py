"""A worker's pool processes start with the catalogue its main process loaded, not with none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import slot_run_id
from sp_scheduler.worker import create_app, send_run
from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration


def test_a_config_broken_before_the_first_run_keeps_the_one_the_worker_started_with(
    system: System, conn: psycopg.Connection[Any]
) -> None:
    # Pool processes used to read the config on their first run (220 ms for 1,000 jobs: the first burst
    # after a worker started began that late). They now inherit the catalogue the main process loaded at
    # start, so a config broken after the start is a failed reload that keeps the last good one, as it
    # is for a process that has run before, not a first load that fails.
    system.configure([{"name": "noop", "extension": "testing", "job": "noop", "schedule": "", "enabled": True}])
    worker = system.worker(concurrency=2)
    system.config.write_text("scheduler: [this is not a mapping\n")
    app = create_app(Settings(database_url=system.database_url, redis_url=system.redis_url, config_path=system.config))
    slot = datetime.now(UTC).replace(microsecond=0)
    send_run(app, RunRequest("noop", "schedule", slot))

    def status() -> str | None:
        row = conn.execute("SELECT status FROM sp_job_runs WHERE id = %s", (slot_run_id("noop", slot),)).fetchone()
        return row[0] if row and row[0] not in ("queued", "running") else None

    assert wait_until(status, timeout=30, message=f"the run was not recorded:\n{worker.output()}") == "succeeded"
    assert "keeping the last good config" in worker.output()
