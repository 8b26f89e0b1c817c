"""Every slot beat sent or a message names ends as a row: stale, impossible, malformed or unpublished."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from sp_scheduler import dead_letters
from sp_scheduler.embedded import embedded_redis
from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import FINISHED_STATUSES, connect, enqueue_run, slot_run_id
from sp_scheduler.worker import TASK_NAME, create_app, send_run
from tests.integration.conftest import System
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


def job(name: str, job_name: str, **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job_name, "schedule": "", "enabled": True, **options}


def slots(system: System, status: str, job_name: str = "steady") -> list[datetime]:
    return sorted(
        datetime.fromisoformat(r["scheduled_for"])
        for r in system.history(job_name)
        if r["trigger"] == "schedule" and r["status"] == status
    )


def app_for(system: System) -> Celery:
    return create_app(Settings(database_url=system.database_url, redis_url=system.redis_url, config_path=system.config))


def rows_by_id(system: System, job_name: str, count: int) -> dict[str, dict[str, Any]]:
    def settled() -> dict[str, dict[str, Any]] | None:
        rows = {r["id"]: r for r in system.history(job_name)}
        return rows if len(rows) >= count and all(r["status"] in FINISHED_STATUSES for r in rows.values()) else None

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


def test_messages_with_wrong_or_missing_arguments_leave_failed_rows_and_the_worker_goes_on(system: System) -> None:
    system.configure([job("noop", "noop", overlap="allow")])
    worker = system.worker()
    app = app_for(system)
    slot = datetime.now(UTC).replace(microsecond=0)
    stray_id, bogus_id = str(uuid.uuid4()), str(uuid.uuid4())
    queued_id = str(uuid.uuid4())  # a queued row whose own message is the bad one
    with connect(system.database_url, autocommit=True) as conn:
        enqueue_run(conn, run_id=queued_id, job_name="noop", trigger="manual", scheduled_for=None, params={})
    app.send_task(TASK_NAME, args=["noop", "schedule", slot.isoformat(), None, {}, "surplus"])  # job + slot
    app.send_task(TASK_NAME, args=["noop", "bogus", None, bogus_id])  # run id + job, no such row yet
    app.send_task(TASK_NAME, kwargs={"job_name": "noop", "trigger": "manual", "run_id": stray_id, "colour": "red"})
    app.send_task(TASK_NAME, args=[], kwargs={"trigger": "manual", "run_id": queued_id, "params": "x"})  # queued row
    app.send_task(TASK_NAME, args=[42])  # names no run at all
    done = system.cli("jobs", "run", "noop", "--wait", "--timeout", "60")  # and the worker goes on
    assert done.exit_code == 0, done.output

    rows = rows_by_id(system, "noop", 5)
    expected = {
        slot_run_id("noop", slot): "6 positional arguments, at most 5",
        bogus_id: "argument 'trigger': must be one of schedule, startup, manual, backfill, not 'bogus'",
        stray_id: "unexpected argument 'colour'",
        queued_id: "argument 'params': params must be an object with text keys, not 'x'",
    }
    for run_id, reason in expected.items():
        row = rows[run_id]
        assert row["status"] == "failed", row
        assert row["message"].startswith("refused: the run message's arguments are unusable: "), row
        assert reason in row["message"], row
    # The message that names no run has no row to fail: it is set aside in the dead-letter list.
    client = redis.Redis.from_url(system.redis_url)
    try:
        letters = wait_until(lambda: dead_letters.read(client), timeout=30, message="no dead letter")
    finally:
        client.close()
    assert [(letter.kind, '"args": [42]' in letter.raw) for letter in letters] == [("bad_arguments", True)], letters
    assert worker.popen.poll() is None


def test_every_slot_of_a_redis_restart_without_persistence_has_a_row(system: System, tmp_path: Path) -> None:
    # Redis comes back empty: beat's entries (and the last slot each sent) are gone. Beat remembers
    # what it sent, so the slots it could not publish meanwhile are recorded `missed` from its side.
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    system.configure([job("steady", "noop", schedule="* * * * * *", overlap="allow")])
    with embedded_redis(tmp_path / "redis", port):
        system.worker(SP_REDIS_URL=redis_url)
        beat = system.beat(SP_REDIS_URL=redis_url)
        wait_until(lambda: len(slots(system, "succeeded")) >= 2, timeout=30)
    wait_until(lambda: "Redis unreachable" in beat.output(), timeout=10)
    down_at = datetime.now(UTC)
    wait_until(lambda: datetime.now(UTC) >= down_at + timedelta(seconds=3), timeout=10)
    with embedded_redis(tmp_path / "redis", port):
        back_at = datetime.now(UTC)

        def contiguous_with_a_gap_recorded() -> list[dict[str, Any]] | None:
            rows = [r for r in system.history("steady") if r["trigger"] == "schedule"]
            found = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in rows)
            span = int((found[-1] - found[0]).total_seconds()) + 1 if found else 0
            after = [s for s in slots(system, "succeeded") if s > back_at]
            missed = [r for r in rows if r["status"] == "missed"]
            return rows if missed and len(after) >= 2 and len(set(found)) == span else None

        rows = wait_until(contiguous_with_a_gap_recorded, timeout=45, message="the outage's slots have no rows")
    missed = [r for r in rows if r["status"] == "missed"]
    assert all(
        r["message"].startswith("missed: beat could not publish it while the broker (Redis) was unreachable")
        for r in missed
    ), missed
    outage = [datetime.fromisoformat(r["scheduled_for"]) for r in missed]
    assert min(outage) < back_at and len(outage) >= 3
