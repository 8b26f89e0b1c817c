"""Retention by partition against a real Postgres: what a pass drops, keeps and deletes, and the
once-per-slot guarantee of the partitioned ledger (claims racing at a partition boundary)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from sp_scheduler.jobs import JobContext
from sp_scheduler.settings import Settings
from sp_scheduler.store import Claim, connect, history, record_slot, retention, slot_run_id
from sp_scheduler.store.partitions import LOGS, PERIOD, RUNS, database_now, ensure_partitions, partitions, period_start
from sp_scheduler.store.retention import JobRules, Rules, apply_retention
from tests.support.ledger import claim
from workers.core.ledger_retention import LedgerRetention

pytestmark = pytest.mark.integration

T = TypeVar("T")
RULES = Rules(runs=timedelta(days=30), logs=timedelta(days=14), min_runs=10)


def add_runs(conn: psycopg.Connection[Any], job: str, times: list[datetime], status: str = "succeeded") -> None:
    """Scheduled runs of `job` created at their slot (as beat and a worker would have written them)."""
    with conn.transaction():
        for at in times:
            conn.execute(
                "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, started_at, created_at,"
                " partition_at) VALUES (%s, %s, 'schedule', %s, %s, %s, %s, %s)",
                (slot_run_id(job, at), job, at, status, at, at, at),
            )


def add_logs(conn: psycopg.Connection[Any], job: str | None, times: list[datetime]) -> None:
    with conn.transaction():
        for at in times:
            conn.execute(
                "INSERT INTO sp_logs (created_at, level, logger, message, job_name)"
                " VALUES (%s, 'INFO', 't', 'line', %s)",
                (at, job),
            )


def runs_of(conn: psycopg.Connection[Any], job: str) -> list[tuple[datetime, str]]:
    rows = conn.execute(
        "SELECT created_at, tableoid::regclass::text FROM sp_job_runs WHERE job_name = %s ORDER BY created_at", (job,)
    ).fetchall()
    return [(at, where) for at, where in rows]


@pytest.fixture
def now(conn: psycopg.Connection[Any]) -> datetime:
    return database_now(conn)


@pytest.fixture
def old_week(conn: psycopg.Connection[Any], now: datetime) -> datetime:
    """The start of a week two months back, with its partition and the next one created."""
    start = period_start(now - timedelta(days=60))
    ensure_partitions(conn, start, ahead=1)
    return start


def test_new_ledgers_have_this_week_and_the_next_two_partitioned(conn: psycopg.Connection[Any], now: datetime) -> None:
    for table in (RUNS, LOGS):
        starts = [p.start for p in partitions(conn, table)]
        assert starts == [period_start(now) + k * PERIOD for k in range(3)]
    kinds = dict(
        conn.execute("SELECT relname::text, relkind::text FROM pg_class WHERE relname IN ('sp_job_runs', 'sp_logs')")
    )
    assert kinds == {"sp_job_runs": "p", "sp_logs": "p"}
    assert ensure_partitions(conn, now) == []  # nothing more to do


def test_a_pass_drops_old_partitions_keeping_each_jobs_minimum_and_every_active_run(
    conn: psycopg.Connection[Any], now: datetime, old_week: datetime
) -> None:
    hour = timedelta(hours=1)
    add_runs(conn, "many", [old_week + i * hour for i in range(25)])  # 25 old runs: the newest 10 stay
    add_runs(conn, "few", [old_week + i * hour for i in range(3)])  # fewer than the minimum: all stay
    add_runs(conn, "active", [old_week + PERIOD + hour], status="running")  # keeps the second week
    add_runs(conn, "active", [old_week + PERIOD + 2 * hour + i * hour for i in range(12)])
    add_runs(conn, "recent", [now - timedelta(days=1)])

    report = apply_retention(conn, RULES, now=now)

    first, second = (f"sp_job_runs_p{week:%Y%m%d}" for week in (old_week, old_week + PERIOD))
    assert first in report.dropped and second not in report.dropped
    assert report.kept[second].startswith("holds active run")
    assert [at for at, _ in runs_of(conn, "many")] == [old_week + i * hour for i in range(15, 25)]
    assert {where for _, where in runs_of(conn, "many")} == {"sp_job_runs_default"}  # copied out before the drop
    assert len(runs_of(conn, "few")) == 3
    # The partition an active run kept stays whole for the next pass: no row of it is deleted one by one.
    active = conn.execute("SELECT status, count(*) FROM sp_job_runs WHERE job_name = 'active' GROUP BY 1").fetchall()
    assert dict(active) == {"running": 1, "succeeded": 12}
    assert report.runs_deleted == 0
    assert len(runs_of(conn, "recent")) == 1

    # Once the run has finished, the next pass drops its partition too, still keeping the minimum.
    with conn.transaction():
        conn.execute("UPDATE sp_job_runs SET status = 'succeeded' WHERE job_name = 'active'")
    again = apply_retention(conn, RULES, now=now)
    assert second in again.dropped and not again.kept
    assert len(runs_of(conn, "active")) == 10
    assert next(p.start for p in partitions(conn, RUNS)) == period_start(now)


@pytest.fixture
def thursday(conn: psycopg.Connection[Any], now: datetime) -> datetime:
    """Noon on this week's Thursday: a pass time that places each rule's cutoff the same way every day."""
    return period_start(now) + timedelta(days=3, hours=12)


def test_per_job_rules_override_the_scheduler_wide_ones(conn: psycopg.Connection[Any], thursday: datetime) -> None:
    ensure_partitions(conn, thursday - PERIOD, ahead=1)  # last week's partition, wholly past a 3-day cutoff
    days = [thursday - timedelta(days=d, minutes=1) for d in range(1, 6)]  # Wed, Tue, Mon, last Sun and Sat
    for job in ("plain", "short", "kept_long"):
        add_runs(conn, job, days)
    rules = Rules(
        runs=timedelta(days=3),
        logs=timedelta(days=14),
        min_runs=0,
        jobs={
            "short": JobRules(runs=timedelta(days=1), logs=timedelta(days=14), min_runs=2),
            "kept_long": JobRules(runs=timedelta(days=30), logs=timedelta(days=14), min_runs=0),
        },
    )
    report = apply_retention(conn, rules, now=thursday)
    assert f"sp_job_runs_p{period_start(thursday) - PERIOD:%Y%m%d}" in report.dropped
    # Monday's run is past 3 days but shares this week's partition with newer runs: it waits for the drop.
    assert len(runs_of(conn, "plain")) == 3
    assert len(runs_of(conn, "short")) == 2  # its own 1 day would keep none: its minimum of 2 stays
    assert len(runs_of(conn, "kept_long")) == 5  # last week's two copied out before the drop
    assert report.runs_deleted == 1  # short's Monday run: a shorter rule of its own is deleted row by row


def test_the_partition_straddling_the_cutoff_stays_whole_until_it_is_wholly_past(
    conn: psycopg.Connection[Any], thursday: datetime
) -> None:
    week = period_start(thursday)
    ensure_partitions(conn, week - 5 * PERIOD, ahead=4)
    cutoff = thursday - RULES.runs  # in the partition four weeks back, which straddles it
    straddling = f"sp_job_runs_p{week - 4 * PERIOD:%Y%m%d}"
    hour = timedelta(hours=1)
    recent = [thursday - timedelta(days=1, minutes=i) for i in range(10)]  # the minimum, newer than all else
    add_runs(conn, "job", [week - 5 * PERIOD + i * hour for i in range(3)])  # wholly past the cutoff
    add_runs(conn, "job", [cutoff - 2 * hour, cutoff - hour, cutoff + hour, *recent])
    add_runs(conn, "outside", [week - 9 * PERIOD, week - 9 * PERIOD + hour, *recent])  # no partition: DEFAULT
    add_logs(conn, None, [thursday - RULES.logs - hour, thursday - RULES.logs + hour])

    report = apply_retention(conn, RULES, now=thursday)

    assert f"sp_job_runs_p{week - 5 * PERIOD:%Y%m%d}" in report.dropped
    assert straddling not in report.dropped and not report.kept
    assert [at for at, _ in runs_of(conn, "job")][:3] == [cutoff - 2 * hour, cutoff - hour, cutoff + hour]
    assert len(runs_of(conn, "outside")) == 10  # rows in the DEFAULT partition go row by row, as before
    assert report.runs_deleted == 2
    assert conn.execute("SELECT count(*) FROM sp_logs").fetchone() == (2,)  # the log line past 14 days waits too
    assert report.logs_deleted == 0

    # A week later the partition is wholly past the cutoff: it goes whole, its rows with it.
    later = apply_retention(conn, RULES, now=thursday + PERIOD)
    assert straddling in later.dropped and later.runs_deleted == 0
    assert [at for at, _ in runs_of(conn, "job")] == sorted(recent)
    assert conn.execute("SELECT count(*) FROM sp_logs").fetchone() == (0,)  # both lines' partition went too


def test_a_partition_a_rule_still_needs_loses_the_other_jobs_rows_one_by_one(
    conn: psycopg.Connection[Any], now: datetime, old_week: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "MAX_COPY", 5)  # more rows still needed than a drop copies out
    hour = timedelta(hours=1)
    add_runs(
        conn, "audit", [old_week + i * hour for i in range(8)]
    )  # kept a year: all 8 still needed, with 10 of plain
    add_runs(conn, "plain", [old_week + i * hour for i in range(15)])  # the newest 10 stay
    rules = Rules(jobs={"audit": JobRules(runs=timedelta(days=365), logs=timedelta(days=14), min_runs=10)})
    report = apply_retention(conn, rules, now=now)
    name = f"sp_job_runs_p{old_week:%Y%m%d}"
    assert report.kept[name] == "18 rows still needed" and report.crowded == [name]
    assert len(runs_of(conn, "audit")) == 8
    assert [at for at, _ in runs_of(conn, "plain")] == [old_week + i * hour for i in range(5, 15)]
    assert report.runs_deleted == 5


def test_a_partition_left_detached_by_a_dead_pass_is_attached_again_and_dropped(
    conn: psycopg.Connection[Any], now: datetime, old_week: datetime
) -> None:
    hour = timedelta(hours=1)
    add_runs(conn, "many", [old_week + i * hour for i in range(25)])
    name = f"sp_job_runs_p{old_week:%Y%m%d}"
    with conn.transaction():  # what a pass that died between its detach and its drop leaves behind
        conn.execute(sql.SQL("ALTER TABLE sp_job_runs DETACH PARTITION {}").format(sql.Identifier(name)))
    assert runs_of(conn, "many") == []

    report = apply_retention(conn, RULES, now=now)

    assert ("attach", name) in [(step.action, step.partition) for step in report.steps]
    assert name in report.dropped
    assert [at for at, _ in runs_of(conn, "many")] == [old_week + i * hour for i in range(15, 25)]
    assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)


def test_log_lines_go_by_age_partition_or_row_and_a_job_may_keep_them_longer(
    conn: psycopg.Connection[Any], now: datetime, old_week: datetime
) -> None:
    add_logs(conn, None, [old_week + timedelta(hours=1)])
    add_logs(conn, "audit", [old_week + timedelta(hours=2)])  # kept 90 days
    add_logs(conn, "chatty", [now - timedelta(days=3), now - timedelta(hours=1)])  # kept 2 days
    add_logs(conn, None, [now - timedelta(days=3)])
    rules = Rules(
        jobs={
            "audit": JobRules(runs=timedelta(days=30), logs=timedelta(days=90), min_runs=10),
            "chatty": JobRules(runs=timedelta(days=30), logs=timedelta(days=2), min_runs=10),
        }
    )
    report = apply_retention(conn, rules, now=now)
    assert f"sp_logs_p{old_week:%Y%m%d}" in report.dropped
    left = conn.execute("SELECT job_name, created_at FROM sp_logs ORDER BY created_at").fetchall()
    assert left == [
        ("audit", old_week + timedelta(hours=2)),
        (None, now - timedelta(days=3)),
        ("chatty", now - timedelta(hours=1)),
    ]
    assert report.logs_deleted == 1


def in_threads(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(i)` in `count` threads that start together."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def connections(database_url: str) -> Iterator[list[psycopg.Connection[Any]]]:
    opened = [connect(database_url, autocommit=True) for _ in range(12)]
    yield opened
    for connection in opened:
        connection.close()


@pytest.mark.parametrize("offset", [timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1)])
def test_claims_racing_for_one_slot_at_a_partition_boundary_run_it_once(
    conn: psycopg.Connection[Any], connections: list[psycopg.Connection[Any]], now: datetime, offset: timedelta
) -> None:
    # A slot at a week's boundary: whatever the claims' own clocks say, every row of the slot has the
    # slot as its partition key, so all of them meet in one partition and its unique index.
    slot = period_start(now) + PERIOD + offset

    def run(i: int) -> Claim:
        if i == 0:  # beat recording the slot as missed races the workers too
            record_slot(connections[i], job_name="edge", scheduled_for=slot, status="missed", message="beat")
            return claim(connections[i], "edge", slot)
        return claim(connections[i], "edge", slot, overlap="allow" if i % 2 else "skip")

    outcomes = sorted(c.outcome for c in in_threads(len(connections), run))
    rows = conn.execute("SELECT id, tableoid::regclass::text FROM sp_job_runs WHERE job_name = 'edge'").fetchall()
    assert len(rows) == 1 and str(rows[0][0]) == slot_run_id("edge", slot)
    expected = f"sp_job_runs_p{period_start(slot):%Y%m%d}"
    assert rows[0][1] == expected
    assert outcomes.count("run") <= 1 and set(outcomes) <= {"run", "duplicate"}


def test_deliveries_of_one_manual_run_without_its_row_run_it_once(
    conn: psycopg.Connection[Any], connections: list[psycopg.Connection[Any]]
) -> None:
    # Ids are no longer unique by index across partitions: the claim serialises inserts of one id.
    run_id = str(uuid.uuid4())
    claims = in_threads(
        len(connections), lambda i: claim(connections[i], "manual_job", None, trigger="manual", run_id=run_id)
    )
    assert sorted(c.outcome for c in claims) == ["duplicate"] * (len(connections) - 1) + ["run"]
    assert len(history(conn, job="manual_job")) == 1


def test_the_ledger_retention_job_reads_its_rules_from_the_config(
    database_url: str, conn: psycopg.Connection[Any], now: datetime, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "scheduler:\n  retention: {runs: 2d, logs: 14d, min_runs_per_job: 1}\n  jobs:\n"
        "    - {name: keep, extension: core, job: heartbeat, schedule: '', enabled: true,"
        " retention: {runs: 60d}}\n"
    )
    old = [now - timedelta(days=30 + d) for d in range(1, 6)]  # before every partition: the DEFAULT one
    add_runs(conn, "keep", old)
    add_runs(conn, "other", old)
    settings = Settings(database_url=database_url, config_path=config)
    logger = logging.getLogger("test.retention")
    ctx = JobContext(
        "ledger_retention", "r", "manual", logger, parameters={"batch_size": 2, "pause_ms": 0}, settings=settings
    )
    result = asyncio.run(LedgerRetention().execute(ctx))
    assert result.success and result.items_processed == 4
    assert len(runs_of(conn, "keep")) == 5 and len(runs_of(conn, "other")) == 1
