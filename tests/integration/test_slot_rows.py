"""Every slot beat sent or a message names ends as a row: stale, impossible, malformed or unpublished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import slot_run_id
from sp_scheduler.worker import create_app, send_run
from tests.integration.conftest import System
from tests.support import wait_until

pytestmark = pytest.mark.integration

FINISHED = {"succeeded", "failed", "timeout", "lost", "skipped", "missed"}


def job(name: str, job_name: str, **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job_name, "schedule": "", "enabled": True, **options}


def app_for(system: System) -> Celery:
    return create_app(Settings(database_url=system.database_url, redis_url=system.redis_url, config_path=system.config))


def rows_by_id(system: System, job_name: str, count: int) -> dict[str, dict[str, Any]]:
    def settled() -> dict[str, dict[str, Any]] | None:
        rows = {r["id"]: r for r in system.history(job_name)}
        return rows if len(rows) >= count and all(r["status"] in FINISHED for r in rows.values()) else None

    found: dict[str, dict[str, Any]] = wait_until(settled, timeout=60, message=f"{count} settled rows of {job_name}")
    return found


def test_stale_slots_are_missed_and_a_far_future_slot_is_refused_when_the_workers_come_back(system: System) -> None:
    # Slots waited on the queue while no worker ran; by the time one starts they are past the job's
    # grace. An `overlap: skip` job must record them `missed` (not run in a burst, not `skipped`).
    system.configure([job("strict", "sleepy", overlap="skip", misfire_grace=5, params={"seconds": 0.5})])
    app = app_for(system)
    now = datetime.now(UTC).replace(microsecond=0)
    stale = [now - timedelta(seconds=30 + i) for i in range(9)]
    far_future = datetime(9999, 12, 31, tzinfo=UTC)
    for slot in [*stale, far_future]:
        send_run(app, RunRequest("strict", "schedule", slot))
    worker = system.worker(concurrency=2)
    fresh = datetime.now(UTC).replace(microsecond=0)
    send_run(app, RunRequest("strict", "schedule", fresh))

    rows = rows_by_id(system, "strict", 11)
    for slot in stale:
        row = rows[slot_run_id("strict", slot)]
        assert row["status"] == "missed", row
        assert row["message"].startswith("missed: the slot was "), row
        assert row["message"].endswith("old when a worker received it, past the job's misfire_grace of 5 s; not run")
    refused = rows[slot_run_id("strict", far_future)]
    assert refused["status"] == "failed"
    assert refused["message"].startswith("refused: slot 9999-12-31T00:00:00+00:00 is ")
    assert "allowed for clock skew; not run" in refused["message"]
    assert rows[slot_run_id("strict", fresh)]["status"] == "succeeded"
    assert worker.output().count("job started") == 1
