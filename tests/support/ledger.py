"""Claiming runs in tests: `claim_run` with defaults, so a test names only what it is about."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence, Sized
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from sp_scheduler.jobs import Trigger
from sp_scheduler.status import LATENESS_TRIGGERS
from sp_scheduler.store import (
    FAILED_STATUSES,
    Claim,
    LogRecordRow,
    Overlap,
    RunOutcome,
    claim_run,
    history,
    last_runs,
    last_with_status,
    slot_run_id,
)
from sp_scheduler.store.latest import MOVING_ROWS
from sp_scheduler.store.partitions import PERIOD, ensure_partitions, period_start

SLOT = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)


def claim(
    conn: psycopg.Connection[Any],
    job: str = "cleanup",
    slot: datetime | None = SLOT,
    *,
    trigger: Trigger = "schedule",
    run_id: str | None = None,
    overlap: Overlap = "skip",
    enabled: bool = True,
    lease_seconds: float = 60.0,
    worker: str = "host-a:1",
    use_override: bool = False,
    finishing: Sequence[RunOutcome] = (),
    logs: Sequence[LogRecordRow] = (),
    retrying: bool = False,
) -> Claim:
    """Claim a slot (or a manual run when `slot` is None) as a worker would, recording `finishing` first."""
    if run_id is None:
        run_id = slot_run_id(job, slot) if slot is not None else str(uuid.uuid4())
    return claim_run(
        conn,
        run_id=run_id,
        job_name=job,
        trigger=trigger,
        scheduled_for=slot,
        params={"days": 30},
        worker=worker,
        lease_seconds=lease_seconds,
        overlap=overlap,
        enabled=enabled,
        use_override=use_override,
        finishing=finishing,
        logs=logs,
        retrying=retrying,
    )


# A ledger's worth of finished runs, written by Postgres itself: `jobs` jobs in turn, one run a
# second, mostly succeeded, 1 in 47 failed, 1 in 4,999 lost, and `never_failing` jobs that never fail.
_FILL = """
INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, enqueued_at, started_at, finished_at, status,
                         message, items_processed, duration_ms, worker, created_at, partition_at)
SELECT gen_random_uuid(), 'job-' || (i %% %(jobs)s), 'schedule', at, at, at, at + interval '20 ms',
       CASE WHEN i %% %(jobs)s >= %(jobs)s - %(never_failing)s THEN 'succeeded'
            WHEN i %% 4999 = 7 THEN 'lost' WHEN i %% 47 = 3 THEN 'failed' ELSE 'succeeded' END,
       'done', 1, 20, 'filler:1', at, at
  FROM generate_series(%(first)s, %(first)s + %(rows)s - 1) AS i,
       LATERAL (SELECT %(start)s::timestamptz + i * %(every)s::interval AS at) t
"""


def fill_ledger(
    conn: psycopg.Connection[Any],
    rows: int,
    *,
    first: int = 1,
    jobs: int = 40,
    never_failing: int = 2,
    every: timedelta = timedelta(seconds=1),
    summary: bool = True,
) -> None:
    """Add runs `first`..`first + rows - 1` of jobs `job-0`..`job-{jobs-1}` (the last `never_failing` never
    fail), `every` apart from 2020-01-01, each in its week's partition (created here, as the
    retention job creates them on a live ledger), then ANALYZE. With `summary` False the rows pass the
    summary's trigger by (a bulk fill is several times faster): call `store.latest.rebuild_latest` after
    the last fill."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    begin, end = start + first * every, start + (first + rows - 1) * every
    ensure_partitions(conn, begin, ahead=(period_start(end) - period_start(begin)) // PERIOD)
    values = {
        "rows": rows,
        "first": first,
        "jobs": jobs,
        "never_failing": never_failing,
        "start": start,
        "every": every,
    }
    with conn.transaction():
        if not summary:
            conn.execute(MOVING_ROWS)  # the summary's trigger ignores these rows: `rebuild_latest` fills it later
        conn.execute(_FILL, values)
    conn.execute("ANALYZE sp_job_runs")


# Every read the CLI makes of the ledger, against a `fill_ledger` database (the read-cost test and
# bench/history_bench.py): history with each filter, and the last runs behind `jobs list/show/status`.
LEDGER_READS: dict[str, Callable[[psycopg.Connection[Any]], Sized]] = {
    "history": history,
    "history --job": lambda conn: history(conn, job="job-5"),
    "history --status failed": lambda conn: history(conn, status="failed"),
    "history --status lost (rare)": lambda conn: history(conn, status="lost"),
    "history --status running (none)": lambda conn: history(conn, status="running"),
    "history --job --status failed": lambda conn: history(conn, job="job-5", status="failed"),
    "history --job (never failed) --status failed": lambda conn: history(conn, job="job-39", status="failed"),
    "jobs list: last run of every job": last_runs,
    "jobs show: last runs of named jobs": lambda conn: last_runs(conn, ["job-5", "job-39", "unknown"]),
    "jobs status: last failures": lambda conn: last_with_status(conn, FAILED_STATUSES, triggers=LATENESS_TRIGGERS),
    "jobs status: last successes": lambda conn: last_with_status(conn, ["succeeded"], triggers=LATENESS_TRIGGERS),
}


def ledger_reads(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(sequential scans of sp_job_runs, its heap and index blocks touched plus those of the job summary
    sp_job_latest) so far, as Postgres counts them, summed over the partitions that hold rows (the
    partitioned table itself stores nothing; an empty partition costs each read a probe of its empty
    index, the same whatever the ledger's size). The summary is small: a scan of it is no ledger scan."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's counters, flushed now, not in a second
    row = conn.execute(
        "SELECT coalesce(sum(seq), 0), coalesce(sum(blocks), 0) FROM ("
        " SELECT t.seq_scan AS seq, coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0)"
        " + coalesce(io.idx_blks_hit, 0) + coalesce(io.idx_blks_read, 0) AS blocks"
        " FROM pg_partition_tree('sp_job_runs') p JOIN pg_class c ON c.oid = p.relid"
        " JOIN pg_stat_user_tables t ON t.relid = p.relid"
        " JOIN pg_statio_user_tables io ON io.relid = p.relid WHERE p.isleaf AND c.reltuples > 0"
        " UNION ALL"
        " SELECT 0, coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0) + coalesce(idx_blks_hit, 0)"
        " + coalesce(idx_blks_read, 0) FROM pg_statio_user_tables WHERE relid = 'sp_job_latest'::regclass) counts"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
