"""Retention of runs and log lines: whole partitions dropped, the rest deleted in small batches.

One pass (`apply_retention`, run by the `ledger_retention` core job) does, in order:

1. creates the partitions of this week and the next ones (store/partitions.py);
2. drops each dated partition wholly older than the retention, unless it holds a `queued` or
   `running` run; the rows a rule still needs (each job's newest `min_runs`, a job kept longer than
   the rest) are copied out first, into the DEFAULT partition;
3. deletes, in batches of `batch` rows, each a transaction of its own, the finished runs and the log
   lines the rules allow that step 2 left: the DEFAULT partition, jobs with a shorter retention, a
   partition an active run kept. Each job's newest `min_runs` runs and every active run stay.

Step 3 alone enforces every rule; step 2 is what makes it cheap at scale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from sp_scheduler.store.partitions import (
    LOGS,
    RUNS,
    Keep,
    Partition,
    Table,
    database_now,
    drop_partition,
    ensure_partitions,
    partitions,
)

log = logging.getLogger(__name__)

_LOCK_KEY = 0x73705F7265746E  # "sp_retn": one pass at a time
MAX_COPY = 10_000  # more rows still needed than this: keep the partition, let the batched deletes work
_EVER = datetime(1, 1, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class JobRules:
    """The rules in force for one job."""

    runs: timedelta
    logs: timedelta
    min_runs: int


@dataclass(frozen=True, slots=True)
class Rules:
    """The scheduler-wide rules and the jobs that override them."""

    runs: timedelta = timedelta(days=30)
    logs: timedelta = timedelta(days=14)
    min_runs: int = 10
    jobs: Mapping[str, JobRules] = field(default_factory=dict)

    def for_job(self, name: str) -> JobRules:
        return self.jobs.get(name) or JobRules(self.runs, self.logs, self.min_runs)


@dataclass(slots=True)
class Report:
    """What one pass did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # partition -> why it stays
    runs_deleted: int = 0
    logs_deleted: int = 0
    busy: bool = False  # another pass held the lock; this one did nothing

    def summary(self) -> str:
        if self.busy:
            return "another retention pass is running; nothing done"
        text = (
            f"dropped {len(self.dropped)} partition(s), deleted {self.runs_deleted} run(s) and "
            f"{self.logs_deleted} log line(s), created {len(self.created)} partition(s)"
        )
        if self.kept:
            text += "; kept " + ", ".join(f"{name} ({why})" for name, why in sorted(self.kept.items()))
        return text


def apply_retention(
    conn: psycopg.Connection[Any], rules: Rules, *, now: datetime | None = None, batch: int = 5000
) -> Report:
    """One retention pass (module docstring). `conn` must have no transaction open."""
    report = Report()
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    if row is None or not row[0]:
        report.busy = True
        return report
    try:
        now = now or database_now(conn)
        report.created = ensure_partitions(conn, now)
        _drop_runs(conn, rules, now, report)
        _drop_logs(conn, rules, now, report)
        report.runs_deleted = _delete_runs(conn, rules, now, batch)
        report.logs_deleted = _delete_logs(conn, rules, now, batch)
    finally:
        if not conn.broken:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    log.info("retention pass", extra={"summary": report.summary()})
    return report


def _jobs_in(cur: psycopg.Cursor[tuple[Any, ...]], table: str) -> list[str]:
    """The distinct job names of a runs table or partition, by skipping through its job index."""
    query = sql.SQL(
        "WITH RECURSIVE n(job) AS (SELECT min(job_name) FROM {t}"
        " UNION ALL SELECT (SELECT min(job_name) FROM {t} WHERE job_name > n.job) FROM n WHERE n.job IS NOT NULL)"
        " SELECT job FROM n WHERE job IS NOT NULL"
    ).format(t=sql.Identifier(table))
    rows = cur.execute(query).fetchall()
    return [job for (job,) in rows]


def _nth_newest(cur: psycopg.Cursor[tuple[Any, ...]], job: str, n: int) -> datetime | None:
    """When the job's n-th newest run was created; None when it has fewer runs."""
    row = cur.execute(
        "SELECT created_at FROM sp_job_runs WHERE job_name = %s ORDER BY created_at DESC OFFSET %s LIMIT 1",
        (job, n - 1),
    ).fetchone()
    if row is None:
        return None
    created: datetime = row[0]
    return created


def _drop_runs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, report: Report) -> None:
    for partition in partitions(conn, RUNS):
        if partition.end > now - rules.runs:
            break
        keep: dict[str, datetime] = {}
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            for job in _jobs_in(cur, partition.name):
                job_rules = rules.for_job(job)
                candidates = [now - job_rules.runs] if job_rules.runs > rules.runs else []
                if job_rules.min_runs > 0:
                    candidates.append(_nth_newest(cur, job, job_rules.min_runs) or _EVER)
                if candidates:
                    keep[job] = min(candidates)
        _drop(conn, partition, keep, report, RUNS)


def _drop_logs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, report: Report) -> None:
    longer = {job: now - r.logs for job, r in rules.jobs.items() if r.logs > rules.logs}
    for partition in partitions(conn, LOGS):
        if partition.end > now - rules.logs:
            break
        _drop(conn, partition, longer, report, LOGS)


def _drop(
    conn: psycopg.Connection[Any], partition: Partition, keep: dict[str, datetime], report: Report, table: Table
) -> None:
    jobs, since = list(keep), list(keep.values())
    if jobs:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            query = sql.SQL(
                "SELECT count(*) FROM {} t JOIN unnest(%s::text[], %s::timestamptz[]) AS k(job, since)"
                " ON t.job_name = k.job AND t.created_at >= k.since"
            ).format(sql.Identifier(partition.name))
            row = cur.execute(query, (jobs, since)).fetchone()
        needed = int(row[0]) if row else 0
        if needed > MAX_COPY:
            report.kept[partition.name] = f"{needed} rows still needed"
            return
    why = drop_partition(conn, table, partition, Keep(jobs, since))
    if why is None:
        report.dropped.append(partition.name)
    else:
        report.kept[partition.name] = why


_DELETE_RUNS = (
    "DELETE FROM sp_job_runs WHERE (id, partition_at) IN (SELECT id, partition_at FROM sp_job_runs"
    " WHERE job_name = %s AND created_at < %s AND status NOT IN ('queued', 'running') ORDER BY created_at LIMIT %s)"
)


def _delete_runs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, batch: int) -> int:
    deleted = 0
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        jobs = _jobs_in(cur, "sp_job_runs")
    for job in jobs:
        job_rules = rules.for_job(job)
        cutoff = now - job_rules.runs
        if job_rules.min_runs > 0:
            with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
                nth = _nth_newest(cur, job, job_rules.min_runs)
            if nth is None:
                continue  # fewer runs than the minimum: all stay
            cutoff = min(cutoff, nth)  # strictly older than the n-th newest: the newest n stay
        deleted += _in_batches(conn, _DELETE_RUNS, (job, cutoff), batch)
    return deleted


_DELETE_LOGS = (
    "DELETE FROM sp_logs WHERE (id, created_at) IN (SELECT id, created_at FROM sp_logs"
    " WHERE created_at < %s AND (job_name IS NULL OR NOT job_name = ANY(%s)) ORDER BY created_at LIMIT %s)"
)
_DELETE_JOB_LOGS = (
    "DELETE FROM sp_logs WHERE (id, created_at) IN (SELECT id, created_at FROM sp_logs"
    " WHERE job_name = %s AND created_at < %s ORDER BY created_at LIMIT %s)"
)


def _delete_logs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, batch: int) -> int:
    own = {job: r.logs for job, r in rules.jobs.items() if r.logs != rules.logs}
    deleted = _in_batches(conn, _DELETE_LOGS, (now - rules.logs, list(own)), batch)
    for job, age in sorted(own.items()):
        deleted += _in_batches(conn, _DELETE_JOB_LOGS, (job, now - age), batch)
    return deleted


def _in_batches(conn: psycopg.Connection[Any], statement: str, args: tuple[Any, ...], batch: int) -> int:
    """Run a `... LIMIT batch` delete until it deletes less than a batch; each batch commits alone."""
    total = 0
    while True:
        with conn.transaction(), conn.cursor() as cur:
            count = cur.execute(statement, (*args, batch)).rowcount
        total += count
        if count < batch:
            return total
