"""The job summary sp_job_latest against the ledger it summarises: after every kind of write, the
"newest run of each job" reads answer exactly what a full scan of sp_job_runs answers.

The reads (store/latest.py) go through the summary; `expected` below scans the ledger itself with
DISTINCT ON, the definition the summary must match.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sp_scheduler.errors import SchemaOutOfDate
from sp_scheduler.jobs import TRIGGERS, Trigger
from sp_scheduler.run_status import FAILED_STATUSES, RUN_STATUSES, RunStatus
from sp_scheduler.status import LATENESS_TRIGGERS
from sp_scheduler.store import (
    RunOutcome,
    apply_schema,
    connect,
    enqueue_backfill,
    enqueue_run,
    finish_runs,
    interrupt_runs,
    last_runs,
    last_with_status,
    reap_lost,
    recent_statuses,
    record_slots,
    release_backfill,
    require_current_schema,
    slot_run_id,
)
from sp_scheduler.store.latest import LATEST_KEPT, TRIGGER_NAME
from sp_scheduler.store.partitions import PERIOD, database_now, ensure_partitions, period_start
from sp_scheduler.store.retention import Rules, apply_retention
from tests.support.ledger import claim, fill_ledger

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
STATUS_SETS: list[Sequence[RunStatus] | None] = [
    None,
    ["succeeded"],
    FAILED_STATUSES,
    ["missed"],
    ["skipped"],
    ["queued", "running"],
]
TRIGGER_SETS: list[Sequence[Trigger] | None] = [None, LATENESS_TRIGGERS, ["backfill"], ["manual"]]


def expected(
    conn: psycopg.Connection[Any], statuses: Sequence[str] | None, triggers: Sequence[str] | None
) -> dict[str, str]:
    """{job: id of its newest run among `statuses` and `triggers`}, by scanning the whole ledger."""
    rows = conn.execute(
        "SELECT DISTINCT ON (job_name) job_name, id::text FROM sp_job_runs"
        " WHERE (%(s)s::text[] IS NULL OR status = ANY(%(s)s)) AND (%(t)s::text[] IS NULL OR trigger = ANY(%(t)s))"
        " ORDER BY job_name, created_at DESC, id DESC",
        {"s": list(statuses) if statuses is not None else None, "t": list(triggers) if triggers is not None else None},
    ).fetchall()
    return dict(rows)


def expected_strips(conn: psycopg.Connection[Any], per_job: int) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT job_name, array_agg(status ORDER BY created_at DESC, id DESC) FROM ("
        " SELECT job_name, status, created_at, id,"
        " row_number() OVER (PARTITION BY job_name ORDER BY created_at DESC, id DESC) AS nth FROM sp_job_runs) r"
        " WHERE nth <= %s GROUP BY job_name",
        (per_job,),
    ).fetchall()
    return {name: list(statuses) for name, statuses in rows}


def assert_summary_matches_ledger(conn: psycopg.Connection[Any]) -> None:
    jobs = sorted(expected(conn, None, None))
    for statuses in STATUS_SETS:
        for triggers in TRIGGER_SETS:
            if statuses is None:
                found = {name: run.id for name, run in last_runs(conn).items()} if triggers is None else None
            else:
                found = {name: run.id for name, run in last_with_status(conn, statuses, triggers=triggers).items()}
            if found is not None:
                assert found == expected(conn, statuses, triggers), (statuses, triggers)
            if statuses is not None:
                named = last_with_status(conn, statuses, [*jobs, "no-such-job"], triggers=triggers)
                assert {name: run.id for name, run in named.items()} == expected(conn, statuses, triggers)
    assert recent_statuses(conn, [*jobs, "no-such-job"], LATEST_KEPT) == expected_strips(conn, LATEST_KEPT)
    assert recent_statuses(conn, jobs, 3) == expected_strips(conn, 3)
    orphans = conn.execute(
        "SELECT count(*) FROM sp_job_latest l WHERE NOT EXISTS"
        " (SELECT 1 FROM sp_job_runs r WHERE r.id = l.run_id AND r.partition_at = l.partition_at)"
    ).fetchone()
    assert orphans == (0,), "a summary row whose run the ledger does not hold"


def test_every_path_that_writes_a_status_keeps_the_summary(conn: psycopg.Connection[Any]) -> None:
    ensure_partitions(conn, SLOT - PERIOD, ahead=3)
    # Scheduled runs claimed and finished, one failing, one timing out; a worker's next claim carries
    # the previous outcome (sp_claim_run_after).
    first = claim(conn, "report", SLOT).record
    second = claim(conn, "report", SLOT + timedelta(hours=1), worker="host-a:2", overlap="allow").record
    assert second.status == "running"
    finish_runs(conn, [RunOutcome(first.id, "succeeded", "ok")])
    claim(
        conn,
        "report",
        SLOT + timedelta(hours=2),
        finishing=[RunOutcome(second.id, "failed", "boom")],
    )
    slow = claim(conn, "cleanup", SLOT).record
    finish_runs(conn, [RunOutcome(slow.id, "timeout", "too slow")])
    # Claims recorded skipped (disabled) and slots recorded missed by beat.
    claim(conn, "cleanup", SLOT + timedelta(hours=1), enabled=False)
    record_slots(
        conn,
        job_name="cleanup",
        slots=[SLOT + timedelta(hours=h) for h in (2, 3, 4)],
        status="missed",
        message="no beat was running",
    )
    assert_summary_matches_ledger(conn)

    # A manual run queued by the CLI, then claimed and finished; another one reaped as never claimed.
    manual_id = str(uuid.uuid4())
    enqueue_run(conn, run_id=manual_id, job_name="cleanup", trigger="manual", scheduled_for=None, params={})
    assert_summary_matches_ledger(conn)
    claim(conn, "cleanup", None, trigger="manual", run_id=manual_id)
    finish_runs(conn, [RunOutcome(manual_id, "succeeded", "by hand")])
    stale_id = str(uuid.uuid4())
    enqueue_run(conn, run_id=stale_id, job_name="report", trigger="manual", scheduled_for=None, params={})
    conn.execute("UPDATE sp_job_runs SET enqueued_at = now() - interval '2 hours' WHERE id = %s", (stale_id,))
    # A running run whose lease expired, reaped lost; another interrupted by its worker's shutdown.
    expired = claim(conn, "sync", SLOT, lease_seconds=0.001).record
    claim(conn, "sync", SLOT + timedelta(hours=1), worker="host-z:9")
    conn.execute("SELECT pg_sleep(0.01)")  # the lease of 1 ms has run out
    reaped = reap_lost(conn, queued_deadline=3600)
    assert {r.id for r in reaped} == {expired.id, stale_id}
    interrupt_runs(conn, workers=["host-z:9"], message="worker shut down")
    assert_summary_matches_ledger(conn)

    # A lost run that really finishes records its true outcome.
    finish_runs(conn, [RunOutcome(expired.id, "succeeded", "late but done")])
    # Backfill: queued rows, one claimed and finished, the others released (deleted) again.
    queued = enqueue_backfill(conn, job_name="report", slots=[SLOT - timedelta(days=d) for d in (1, 2, 3)], params={})
    assert_summary_matches_ledger(conn)
    claim(conn, "report", queued[0].scheduled_for, trigger="backfill")
    finish_runs(conn, [RunOutcome(queued[0].id, "succeeded", "old slot")])
    release_backfill(conn, queued[1:])
    assert_summary_matches_ledger(conn)


def test_a_job_keeps_its_newest_runs_and_the_newest_of_each_kind(conn: psycopg.Connection[Any]) -> None:
    # 300 runs of one job, 1 in 47 failed: the newest failure is far older than its 20 newest runs.
    fill_ledger(conn, 300, jobs=1, never_failing=0)
    assert_summary_matches_ledger(conn)
    (held,) = conn.execute("SELECT count(*) FROM sp_job_latest").fetchone() or (0,)
    assert LATEST_KEPT <= held <= LATEST_KEPT + 2  # the 20 newest, the newest failure, the newest lost


def test_runs_of_two_jobs_claimed_and_finished_crosswise_by_many_workers_never_deadlock(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    # Each worker ends a run of one job and, in the same statement, claims the next slot of the other:
    # the summary rows of both jobs are written in opposite orders by different workers at once.
    ensure_partitions(conn, SLOT, ahead=2)

    def work(worker: int) -> None:
        with connect(database_url, autocommit=True) as own:
            previous: str | None = None
            for step in range(40):
                job = ("alpha", "beta")[(step + worker) % 2]
                slot = SLOT + timedelta(seconds=step * 4 + worker)
                finishing = [RunOutcome(previous, "succeeded" if step % 5 else "failed", "done")] if previous else []
                result = claim(own, job, slot, overlap="allow", worker=f"w{worker}", finishing=finishing)
                assert result.outcome == "run"
                previous = result.record.id

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert_summary_matches_ledger(conn)


def test_the_upgrade_fills_the_summary_with_the_rows_already_there(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        fill_ledger(conn, 500, jobs=7)
        # The state of a database before this release: runs, no trigger, no summary rows.
        conn.execute(f"DROP TRIGGER {TRIGGER_NAME} ON sp_job_runs")
        conn.execute("DELETE FROM sp_job_latest")
        with pytest.raises(SchemaOutOfDate, match=TRIGGER_NAME):
            require_current_schema(conn)
        apply_schema(conn)
        require_current_schema(conn)
        assert_summary_matches_ledger(conn)
        claim(conn, "job-3", SLOT)  # and it follows writes from then on
        assert_summary_matches_ledger(conn)


def test_retention_leaves_no_summary_row_pointing_at_a_dropped_run(conn: psycopg.Connection[Any]) -> None:
    now = database_now(conn)
    old_week = period_start(now - timedelta(days=60))
    ensure_partitions(conn, old_week, ahead=1)
    hour = timedelta(hours=1)
    for job, count in (("many", 25), ("once", 1)):
        for i in range(count):
            at = old_week + i * hour
            status = "failed" if i == 0 else "succeeded"
            conn.execute(
                "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, started_at, created_at,"
                " partition_at) VALUES (%s, %s, 'schedule', %s, %s, %s, %s, %s)",
                (slot_run_id(job, at), job, at, status, at, at, at),
            )
    claim(conn, "once", now - timedelta(minutes=5))  # a recent run beside its old failure
    assert last_with_status(conn, ["failed"]).keys() == {"many", "once"}

    report = apply_retention(conn, Rules(runs=timedelta(days=30), logs=timedelta(days=14), min_runs=10), now=now)

    assert f"sp_job_runs_p{old_week:%Y%m%d}" in report.dropped
    # "many" keeps its newest 10 (copied out of the dropped week); its old failure went with the week,
    # and with it the summary's pointer: no last failure rather than one that history no longer shows.
    # "once" has fewer runs than the minimum: its old failure was copied out and is still its last.
    assert last_with_status(conn, ["failed"]).keys() == {"once"}
    assert len(recent_statuses(conn, ["many"], LATEST_KEPT)["many"]) == 10
    assert_summary_matches_ledger(conn)


@pytest.mark.parametrize("status", RUN_STATUSES)
def test_each_status_and_trigger_is_a_kind_the_summary_keeps(conn: psycopg.Connection[Any], status: str) -> None:
    ensure_partitions(conn, SLOT, ahead=1)
    for n, trigger in enumerate(TRIGGERS):
        slot = SLOT - timedelta(minutes=n)  # one slot each: schedule and backfill rows share the slot index
        conn.execute(
            "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, created_at, partition_at)"
            " VALUES (gen_random_uuid(), 'kinds', %s, %s, %s, %s, %s)",
            (trigger, slot if trigger in ("schedule", "backfill") else None, status, SLOT, slot),
        )
    for minute in range(1, 2 * LATEST_KEPT):  # newer runs push the kinds out of the 20 newest
        at = SLOT + timedelta(minutes=minute)
        conn.execute(
            "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, created_at, partition_at)"
            " VALUES (%s, 'kinds', 'schedule', %s, 'succeeded', %s, %s)",
            (slot_run_id("kinds", at), at, at, at),
        )
    assert_summary_matches_ledger(conn)
