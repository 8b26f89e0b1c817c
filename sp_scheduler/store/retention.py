"""Retention of runs and log lines: whole partitions dropped, rows deleted only where a rule forces it.

One pass (`apply_retention`, run by the `ledger_retention` core job) does, in order:

1. attaches again a partition an earlier pass detached but did not drop (it died in between), and
   creates the partitions of this week and the next ones (store/partitions.py);
2. drops each dated partition wholly older than the retention, unless it holds a `queued` or
   `running` run; the rows a rule still needs (each job's newest `min_runs`, a job kept longer than
   the rest) are copied into the DEFAULT partition as the detached partition is dropped;
3. deletes, in batches of `batch` rows, each a transaction of its own, the finished runs and the log
   lines past their rules that no drop will take: those in the DEFAULT partition and in a dated
   partition kept because a rule still needs more of its rows than a drop copies out, and, in every
   partition, those of a job whose own rule is shorter than the scheduler's. Each job's newest
   `min_runs` runs and every active run stay.

The partition that straddles the cutoff is left whole: its rows go with it once it is wholly past the
cutoff, so a row outlives its age by up to a partition's width (a week) and a pass's interval.
Deleting them row by row instead (tens of thousands of rows a day on a busy ledger) is what cost
concurrent claims most. A partition kept for an active run or a busy table is likewise left whole for
the next pass: the run ends (or is reaped) and the lock comes free long before a day is out.
"""

from __future__ import annotations

import logging
import time
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
    Step,
    Table,
    database_now,
    drop_partition,
    ensure_partitions,
    kept_rows,
    partitions,
    reattach_detached,
)

log = logging.getLogger(__name__)

_LOCK_KEY = 0x73705F7265746E  # "sp_retn": one pass at a time
MAX_COPY = 10_000  # more rows still needed than this: keep the partition, let the batched deletes work
PAUSE = 0.25  # seconds a pass rests after each partition it drops and each full delete batch
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
    crowded: list[str] = field(default_factory=list)  # kept: a rule needs more rows than a drop copies
    steps: list[Step] = field(default_factory=list)  # each DDL transaction and how long it took

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
    conn: psycopg.Connection[Any],
    rules: Rules,
    *,
    now: datetime | None = None,
    batch: int = 5000,
    pause: float = PAUSE,
) -> Report:
    """One retention pass (module docstring). `conn` must have no transaction open.

    `pause` is how long the pass rests after each partition it drops and each full delete batch: each
    drop stalls the claims in flight for a moment and each batch takes a core, so spacing them keeps
    workers claiming at their usual pace. A daily pass has the time."""
    report = Report()
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
        # The pass's queries are index probes over arrays whose row estimates trip JIT compilation,
        # which costs hundreds of milliseconds of CPU (the claims' CPU) to save none.
        jit = cur.execute("SELECT current_setting('jit'), set_config('jit', 'off', false)").fetchone()
    if row is None or not row[0]:
        report.busy = True
        _restore_jit(conn, jit)
        return report
    try:
        now = now or database_now(conn)
        report.steps = reattach_detached(conn)
        created = ensure_partitions(conn, now)
        report.created = [step.partition for step in created]
        report.steps.extend(created)
        _drop_runs(conn, rules, now, report, pause)
        _drop_logs(conn, rules, now, report, pause)
        pace = _Pace(batch, pause)
        report.runs_deleted = _delete_runs(conn, rules, now, pace, report.crowded)
        report.logs_deleted = _delete_logs(conn, rules, now, pace, report.crowded)
    finally:
        if not conn.broken:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            _restore_jit(conn, jit)
    log.info("retention pass", extra={"summary": report.summary()})
    return report


def _restore_jit(conn: psycopg.Connection[Any], previous: tuple[Any, ...] | None) -> None:
    if previous is not None:
        with conn.transaction():
            conn.execute("SELECT set_config('jit', %s, false)", (previous[0],))


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


def _drop_runs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, report: Report, pause: float) -> None:
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
        _drop(conn, partition, keep, report, RUNS, pause)


def _drop_logs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, report: Report, pause: float) -> None:
    longer = {job: now - r.logs for job, r in rules.jobs.items() if r.logs > rules.logs}
    for partition in partitions(conn, LOGS):
        if partition.end > now - rules.logs:
            break
        _drop(conn, partition, longer, report, LOGS, pause)


def _drop(
    conn: psycopg.Connection[Any],
    partition: Partition,
    keep: dict[str, datetime],
    report: Report,
    table: Table,
    pause: float,
) -> None:
    jobs, since = list(keep), list(keep.values())
    if jobs:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            query = sql.SQL("SELECT count(*) FROM {}").format(kept_rows(partition.name))
            row = cur.execute(query, (jobs, since)).fetchone()
        needed = int(row[0]) if row else 0
        if needed > MAX_COPY:
            report.kept[partition.name] = f"{needed} rows still needed"
            report.crowded.append(partition.name)
            return
    done = drop_partition(conn, table, partition, Keep(jobs, since))
    report.steps.extend(done.steps)
    if done.kept is None:
        report.dropped.append(partition.name)
        time.sleep(pause)
    else:
        report.kept[partition.name] = done.kept


def _row_tables(conn: psycopg.Connection[Any], table: Table, crowded: list[str]) -> tuple[list[str], list[str]]:
    """Where rows are deleted one by one: (the DEFAULT partition and the crowded ones, where every
    rule's rows go; the DEFAULT partition and every dated one, where a shorter rule's rows go)."""
    dated = [p.name for p in partitions(conn, table)]
    return [table.default, *(name for name in dated if name in crowded)], [table.default, *dated]


_DELETE_RUNS = (
    "DELETE FROM {t} WHERE (id, partition_at) IN (SELECT id, partition_at FROM {t}"
    " WHERE job_name = %s AND created_at < %s AND status NOT IN ('queued', 'running') ORDER BY created_at LIMIT %s)"
)


def _delete_runs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, pace: _Pace, crowded: list[str]) -> int:
    """Each job's runs past its rules, where no drop will take them (module docstring, step 3)."""
    past, every = _row_tables(conn, RUNS, crowded)
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
        for table in every if job_rules.runs < rules.runs else past:
            deleted += _in_batches(conn, _DELETE_RUNS, table, (job, cutoff), pace)
    return deleted


_DELETE_LOGS = (
    "DELETE FROM {t} WHERE (id, created_at) IN (SELECT id, created_at FROM {t}"
    " WHERE created_at < %s AND (job_name IS NULL OR NOT job_name = ANY(%s)) ORDER BY created_at LIMIT %s)"
)
_DELETE_JOB_LOGS = (
    "DELETE FROM {t} WHERE (id, created_at) IN (SELECT id, created_at FROM {t}"
    " WHERE job_name = %s AND created_at < %s ORDER BY created_at LIMIT %s)"
)


def _delete_logs(conn: psycopg.Connection[Any], rules: Rules, now: datetime, pace: _Pace, crowded: list[str]) -> int:
    """Log lines past their rules, where no drop will take them (as `_delete_runs`)."""
    own = {job: r.logs for job, r in rules.jobs.items() if r.logs != rules.logs}
    past, every = _row_tables(conn, LOGS, crowded)
    deleted = 0
    for table in past:
        deleted += _in_batches(conn, _DELETE_LOGS, table, (now - rules.logs, list(own)), pace)
    for job, age in sorted(own.items()):
        for table in every if age < rules.logs else past:
            deleted += _in_batches(conn, _DELETE_JOB_LOGS, table, (job, now - age), pace)
    return deleted


@dataclass(frozen=True, slots=True)
class _Pace:
    """How the batched deletes go: rows per batch, and the rest after each full batch."""

    batch: int
    pause: float


def _in_batches(conn: psycopg.Connection[Any], statement: str, table: str, args: tuple[Any, ...], pace: _Pace) -> int:
    """Run a `... LIMIT batch` delete on one partition until it deletes less than a batch; each batch
    commits alone. Naming the partition, not the table, keeps the planner from visiting the others."""
    query = sql.SQL(statement).format(t=sql.Identifier(table))
    total = 0
    while True:
        with conn.transaction(), conn.cursor() as cur:
            count = cur.execute(query, (*args, pace.batch)).rowcount
        total += count
        if count < pace.batch:
            return total
        time.sleep(pace.pause)
