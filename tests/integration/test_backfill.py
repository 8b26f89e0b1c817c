"""`jobs backfill` against real Postgres, Redis and worker processes: each free slot of the range runs
once as a backfill run, recorded slots are skipped, an oversized range is refused, and racing
backfills (and beat's own deliveries of the same slots) leave one run per slot."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sp_scheduler.errors import ExitCode
from sp_scheduler.runner import RunRequest
from sp_scheduler.settings import Settings
from sp_scheduler.store import FINISHED_STATUSES, connect, query_logs, record_slot, slot_run_id
from sp_scheduler.worker import create_app, send_run
from tests.integration.conftest import System
from tests.support import free_port, wait_until
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)
EVERY_MINUTE = "0 * * * * *"


def job(name: str = "noop", **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": "noop", "enabled": True, **options}


def finished_rows(system: System, count: int) -> list[dict[str, Any]]:
    """The job's rows once `count` of them exist and all are finished, oldest slot first."""

    def done() -> list[dict[str, Any]] | None:
        rows = system.history("noop", limit=10_000)
        return rows if len(rows) >= count and all(r["status"] in FINISHED_STATUSES for r in rows) else None

    rows = wait_until(done, timeout=90, message=f"{count} runs did not finish")
    return sorted(rows, key=lambda r: str(r["scheduled_for"]))


def started_lines(system: System, run_id: str) -> int:
    with connect(system.database_url) as conn:
        return sum(1 for _, row in query_logs(conn, run_id=run_id, limit=100) if row.message == "job started")


def test_backfill_runs_each_free_slot_once_and_skips_the_recorded_ones(system: System) -> None:
    system.configure([job(schedule=EVERY_MINUTE, misfire_grace=60)])  # a grace backfill must ignore
    slots = [START + timedelta(minutes=n) for n in range(5)]
    with connect(system.database_url, autocommit=True) as conn:
        record_slot(conn, job_name="noop", scheduled_for=slots[2], status="missed", message="beat was down")
    args = ("jobs", "backfill", "noop", "--from", "2026-01-01T00:00", "--to", "2026-01-01T00:04")

    dry = system.cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        dry.stdout.count("would queue") == 5 and "skipped      2026-01-01T00:02:00+00:00  already missed" in dry.stdout
    )
    assert [r["status"] for r in system.history("noop")] == ["missed"]  # a dry run enqueues nothing

    system.worker()
    done = system.cli_json(*args)
    assert [r["scheduled_for"] for r in done["queued"]] == [s.isoformat() for s in slots if s != slots[2]]
    assert [(r["scheduled_for"], r["status"], r["trigger"]) for r in done["skipped"]] == [
        (slots[2].isoformat(), "missed", "schedule")
    ]
    rows = finished_rows(system, 5)
    assert [datetime.fromisoformat(r["scheduled_for"]) for r in rows] == slots
    ran = [r for r in rows if r["trigger"] == "backfill"]
    assert [r["status"] for r in ran] == ["succeeded"] * 4
    for row in ran:
        assert row["id"] == slot_run_id("noop", datetime.fromisoformat(row["scheduled_for"]))
        assert started_lines(system, row["id"]) == 1

    again = system.cli_json(*args)  # every slot has its row now: nothing is queued twice
    assert again["queued"] == [] and len(again["skipped"]) == 5
    assert {(r["trigger"], r["status"]) for r in again["skipped"]} == {
        ("backfill", "succeeded"),
        ("schedule", "missed"),
    }
    assert len(system.history("noop")) == 5


def test_an_oversized_range_is_refused_and_nothing_is_enqueued(system: System) -> None:
    system.configure([job(schedule=EVERY_MINUTE)])
    system.worker()
    day = system.cli("jobs", "backfill", "noop", "--from", "2026-01-01T00:00", "--to", "2026-01-02T00:00")
    assert day.exit_code == ExitCode.INVALID
    assert day.output.strip() == (
        "error: the range holds 1,441 slots, more than --max 1,000; nothing enqueued"
        " (narrow --from/--to, or raise --max)"
    )
    hour = ("jobs", "backfill", "noop", "--from", "2026-01-01T00:00", "--to", "2026-01-01T01:00")
    assert system.cli(*hour, "--max", "60").exit_code == ExitCode.INVALID
    assert system.history("noop") == []
    assert len(system.cli_json(*hour, "--max", "61")["queued"]) == 61  # the same range within --max goes ahead


def test_a_disabled_job_needs_force(system: System) -> None:
    system.configure([job(schedule=EVERY_MINUTE, enabled=False)])
    args = ("jobs", "backfill", "noop", "--from", "2026-01-01T00:00", "--to", "2026-01-01T00:01")
    refused = system.cli(*args)
    assert refused.exit_code == ExitCode.REFUSED and "is disabled in config; use --force" in refused.output
    assert system.history("noop") == []
    forced = system.cli(*args, "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert len(json.loads(forced.stdout)["queued"]) == 2
    assert "note: noop is disabled" in forced.stderr
    assert "older than the runs retention (30 days)" in forced.stderr  # 2026-01-01 is long past a month


def waiting_on_locks(system: System) -> int:
    with connect(system.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def scheduled_rows(system: System, slots: list[datetime]) -> int:
    with connect(system.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sp_job_runs WHERE job_name = 'noop' AND trigger = 'schedule'"
            " AND scheduled_for = ANY(%s)",
            (slots,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_racing_backfills_and_beats_deliveries_run_each_slot_once(system: System) -> None:
    system.configure([job(schedule="* * * * * *", overlap="allow", misfire_grace=10**9)])
    system.worker(concurrency=2)
    slots = [START + timedelta(seconds=n) for n in range(120)]
    middle = 60
    command = [sys.executable, "-m", "sp_scheduler", "jobs", "backfill", "noop", "--json"]
    command += ["--from", slots[0].isoformat(), "--to", slots[-1].isoformat()]
    app = create_app(Settings(database_url=system.database_url, redis_url=system.redis_url, config_path=system.config))
    # An uncommitted row of the middle slot, as a claim in flight holds it: the first backfill's INSERT
    # (slots in order) waits on it there, and the second waits on the first's uncommitted rows.
    with connect(system.database_url) as holder, holder.transaction():
        record_slot(holder, job_name="noop", scheduled_for=slots[middle], status="missed", message="in flight")
        backfills = [
            subprocess.Popen(command, cwd=ROOT, env=system.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        wait_until(lambda: waiting_on_locks(system) >= 2, timeout=60, message="the backfills did not meet")
        later = slots[middle + 1 :]
        for slot in later:  # beat delivers the later slots meanwhile; the worker claims them first
            send_run(app, RunRequest("noop", "schedule", slot))
        wait_until(lambda: scheduled_rows(system, later) == len(later), timeout=60)
    outputs = [process.communicate(timeout=120) for process in backfills]
    assert [process.returncode for process in backfills] == [0, 0], outputs
    reports = [json.loads(stdout) for stdout, _ in outputs]
    queued = [r["scheduled_for"] for report in reports for r in report["queued"]]
    assert sorted(queued) == [slot.isoformat() for slot in slots[:middle]]  # each free slot by one backfill only
    for report in reports:
        assert len(report["queued"]) + len(report["skipped"]) == len(slots)

    rows = finished_rows(system, len(slots))
    assert [datetime.fromisoformat(r["scheduled_for"]) for r in rows] == slots  # one row per slot
    assert [r["trigger"] for r in rows] == ["backfill"] * middle + ["schedule"] * (len(slots) - middle)
    assert [r["status"] for r in rows] == ["succeeded"] * middle + ["missed"] + ["succeeded"] * len(later)
    assert all(started_lines(system, r["id"]) == 1 for r in rows if r["status"] == "succeeded")


def test_slots_whose_message_redis_refused_are_released_for_the_next_attempt(system: System) -> None:
    system.configure([job(schedule=EVERY_MINUTE)])
    args = ("jobs", "backfill", "noop", "--from", "2026-01-01T00:00", "--to", "2026-01-01T00:02")
    down = system.cli(*args, SP_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert down.exit_code == ExitCode.UNAVAILABLE, down.output
    assert "0 backfill run(s) sent, 3 slot(s) released (run the same command again)" in down.output
    assert system.history("noop") == []
    assert len(system.cli_json(*args)["queued"]) == 3
