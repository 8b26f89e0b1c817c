"""Reading the ledger: one run, recent runs, and the newest run of each job (per status), each by an
index whose cost does not grow with the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import Trigger
from sp_scheduler.run_status import RUN_STATUSES, RunStatus
from sp_scheduler.store.records import COLUMNS, RunRecord, fetch_one, run_uuid, where_clause


@dataclass(frozen=True, slots=True)
class RunPosition:
    """A place in the newest-first ordering of runs: where the next page of history starts."""

    created_at: datetime
    run_id: str

    @classmethod
    def after(cls, record: RunRecord) -> RunPosition:
        """The position just past `record`, so the next page starts with the run after it."""
        return cls(record.created_at, record.id)


_SELECT_BY_ID = sql.SQL("SELECT {cols} FROM sp_job_runs WHERE id = %s").format(cols=COLUMNS)


def get_run(conn: psycopg.Connection[Any], run_id: str) -> RunRecord:
    """One run by id; `UnknownRun` when the ledger does not hold it."""
    key = run_uuid(run_id)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        record = fetch_one(cur, _SELECT_BY_ID, (key,))
    if record is None:
        raise UnknownRun(f"unknown run {run_id}")
    return record


def history(
    conn: psycopg.Connection[Any],
    *,
    job: str | None = None,
    status: RunStatus | None = None,
    trigger: Trigger | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: RunPosition | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Runs newest first, optionally of one job and/or one status; each filter has its own index.

    `since`/`until` bound `created_at` (from inclusive, to exclusive); `before` continues a page:
    only rows older than that (created_at, id) position, the keyset the ordering uses.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if job is not None:
        conditions.append(sql.SQL("job_name = %s"))
        params.append(job)
    if status is not None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        conditions.append(sql.SQL("status = %s"))
        params.append(status)
    if trigger is not None:
        conditions.append(sql.SQL("trigger = %s"))
        params.append(trigger)
    if since is not None:
        conditions.append(sql.SQL("created_at >= %s"))
        params.append(since)
    if until is not None:
        conditions.append(sql.SQL("created_at < %s"))
        params.append(until)
    if before is not None:
        # The first term lets the created_at indexes bound the scan; the row comparison breaks ties.
        conditions.append(sql.SQL("created_at <= %s AND (created_at, id) < (%s, %s)"))
        params.extend([before.created_at, before.created_at, run_uuid(before.run_id)])
    query = sql.SQL("SELECT {cols} FROM sp_job_runs{where} ORDER BY created_at DESC, id DESC LIMIT %s").format(
        cols=COLUMNS, where=where_clause(conditions)
    )
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit]).fetchall()
    return [RunRecord.from_row(row) for row in rows]


def last_runs(conn: psycopg.Connection[Any], job_names: Sequence[str] | None = None) -> dict[str, RunRecord]:
    """The newest row of each job (of every job in the ledger when `job_names` is None)."""
    return _latest_per_job(conn, job_names, statuses=None)


def last_with_status(
    conn: psycopg.Connection[Any],
    statuses: Sequence[RunStatus],
    job_names: Sequence[str] | None = None,
    *,
    triggers: Sequence[Trigger] | None = None,
) -> dict[str, RunRecord]:
    """The newest row of each job among `statuses` (and `triggers`, when given): "last success", "last
    failure" in `jobs status`."""
    return _latest_per_job(conn, job_names, statuses=list(statuses), triggers=triggers)


# Distinct job names by skipping through the (job_name, created_at) index, one probe per job, rather
# than scanning millions of rows.
_ALL_JOB_NAMES = sql.SQL(
    "WITH RECURSIVE names(job_name) AS ("
    " (SELECT job_name FROM sp_job_runs ORDER BY job_name LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT r.job_name FROM sp_job_runs r WHERE r.job_name > n.job_name ORDER BY r.job_name LIMIT 1)"
    " FROM names n WHERE n.job_name IS NOT NULL)"
)
_GIVEN_JOB_NAMES = sql.SQL("WITH names(job_name) AS (SELECT DISTINCT unnest(%(names)s::text[]))")


# The newest row of a job (and status) by seeking in the composite index: start at the first entry
# >= (job[, status]) in index order, which is that group's newest row if the group exists. Only that
# index yields this ordering, so the planner cannot wander off to the created_at index and scan the
# whole table for a job that never failed (it does with `WHERE job_name = .. ORDER BY created_at LIMIT 1`).
_NEWEST_OF_JOB = sql.SQL(
    "CROSS JOIN LATERAL (SELECT {cols} FROM sp_job_runs WHERE job_name >= n.job_name"
    " ORDER BY job_name, created_at DESC LIMIT 1) r"
    " WHERE r.job_name = n.job_name"
)
_NEWEST_OF_JOB_AND_STATUS = sql.SQL(
    "CROSS JOIN unnest(%(statuses)s::text[]) AS s(status)"
    " CROSS JOIN LATERAL (SELECT {cols} FROM sp_job_runs WHERE (job_name, status) >= (n.job_name, s.status)"
    "{triggers} ORDER BY job_name, status, created_at DESC LIMIT 1) r"
    " WHERE r.job_name = n.job_name AND r.status = s.status"
)
# With triggers, the seek reads on past the group's newest rows of other triggers (backfill runs: at
# most the few thousand an operator queued) until one matches.
_OF_TRIGGERS = sql.SQL(" AND trigger = ANY(%(triggers)s::text[])")


def _latest_per_job(
    conn: psycopg.Connection[Any],
    job_names: Sequence[str] | None,
    *,
    statuses: list[RunStatus] | None,
    triggers: Sequence[Trigger] | None = None,
) -> dict[str, RunRecord]:
    """One index probe per job (per job and status when filtering) instead of sorting the whole table."""
    if (job_names is not None and not job_names) or (statuses is not None and not statuses):
        return {}
    if statuses is None:
        newest = _NEWEST_OF_JOB.format(cols=COLUMNS)
    else:
        of_triggers = _OF_TRIGGERS if triggers is not None else sql.SQL("")
        newest = _NEWEST_OF_JOB_AND_STATUS.format(cols=COLUMNS, triggers=of_triggers)
    query = sql.SQL(
        "{names} SELECT DISTINCT ON (r.job_name) r.* FROM names n {newest} ORDER BY r.job_name, r.created_at DESC"
    ).format(names=_ALL_JOB_NAMES if job_names is None else _GIVEN_JOB_NAMES, newest=newest)
    params = {"names": list(job_names or []), "statuses": list(statuses or []), "triggers": list(triggers or [])}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return {row["job_name"]: RunRecord.from_row(row) for row in rows}


@dataclass(frozen=True, slots=True)
class RunMark:
    """A run as a status strip shows it: which, how it ended, when."""

    run_id: str
    status: RunStatus
    created_at: datetime
    scheduled_for: datetime | None


# The newest `per_job` rows of each named job, one index range per job (job_name, created_at DESC).
_RECENT_PER_JOB = sql.SQL(
    "SELECT n.job_name, r.id, r.status, r.created_at, r.scheduled_for"
    " FROM unnest(%(names)s::text[]) AS n(job_name)"
    " CROSS JOIN LATERAL (SELECT id, status, created_at, scheduled_for FROM sp_job_runs"
    " WHERE job_name = n.job_name ORDER BY created_at DESC LIMIT %(per_job)s) r"
    " ORDER BY n.job_name, r.created_at DESC"
)


def recent_marks(conn: psycopg.Connection[Any], job_names: Sequence[str], per_job: int) -> dict[str, list[RunMark]]:
    """The newest `per_job` runs of each job, newest first (a job without runs is absent)."""
    if not job_names or per_job < 1:
        return {}
    marks: dict[str, list[RunMark]] = {}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_RECENT_PER_JOB, {"names": list(job_names), "per_job": per_job}).fetchall()
    for row in rows:
        marks.setdefault(row["job_name"], []).append(
            RunMark(str(row["id"]), row["status"], row["created_at"].astimezone(UTC), row["scheduled_for"])
        )
    return marks
