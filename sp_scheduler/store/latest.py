"""The newest runs of each job, read from the summary `sp_job_latest` (migration 0012) rather than the ledger.

On the weekly-partitioned ledger "the newest run of each job" cannot prune partitions (the partition
key is the slot, not created_at), so every such read made one index probe per job per partition: with
1,000 jobs and 21 weeks, tens of thousands of probes for `jobs status` or the dashboard's jobs page.
The summary holds, per job, its `LATEST_KEPT` newest runs and its newest run of each (status,
trigger); the trigger `sp_job_latest_track` (store/sql/functions.sql) keeps it on every write of a
run's status. Reads pick the winners in the summary and fetch only their rows from the ledger, each by
its primary key in one partition; a run the ledger no longer holds is never returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from sp_scheduler.jobs import Trigger
from sp_scheduler.run_status import RunStatus
from sp_scheduler.store.records import RunRecord

LATEST_KEPT = 20  # runs per job the summary always holds: the dashboard's strip (`20` in functions.sql)
TRIGGER_NAME = "sp_job_latest_track"
# Set (SET LOCAL) by store/partitions.py while it moves rows between partitions: the trigger ignores them.
MOVING_ROWS = "SET LOCAL sp_scheduler.moving_rows = 'on'"

_CREATE_TRIGGER = (
    f"CREATE TRIGGER {TRIGGER_NAME} AFTER INSERT OR DELETE OR UPDATE OF status ON sp_job_runs"
    f" FOR EACH ROW EXECUTE FUNCTION {TRIGGER_NAME}()"
)
_HAS_TRIGGER = (
    "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('sp_job_runs')"
    f" AND tgname = '{TRIGGER_NAME}' AND NOT tgisinternal)"
)


def tracking_installed(conn: psycopg.Connection[Any]) -> bool:
    """Whether sp_job_runs has the trigger that keeps the summary."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_HAS_TRIGGER).fetchone()
    return bool(row and row[0])


def ensure_tracking(conn: psycopg.Connection[Any]) -> int | None:
    """Create the trigger and fill the summary, in one transaction; None when the trigger was there.

    The table is locked against writes (SHARE ROW EXCLUSIVE, as CREATE TRIGGER takes anyway) before
    the fill reads it, so no run written by a process of the older release falls between the fill and
    the trigger. The caller holds the migration lock. Returns the summary rows written.
    """
    if tracking_installed(conn):  # the common case: no lock taken, writers never wait on a `db migrate`
        return None
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("LOCK TABLE sp_job_runs IN SHARE ROW EXCLUSIVE MODE")
        row = cur.execute(_HAS_TRIGGER).fetchone()
        if row and row[0]:
            return None
        cur.execute(_CREATE_TRIGGER)
        row = cur.execute("SELECT sp_job_latest_rebuild()").fetchone()
    _analyze(conn)
    return int(row[0]) if row else 0


def rebuild_latest(conn: psycopg.Connection[Any]) -> int:
    """Fill the summary from the ledger again (after a bulk fill made with the trigger ignoring it)."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT sp_job_latest_rebuild()").fetchone()
    _analyze(conn)
    return int(row[0]) if row else 0


def _analyze(conn: psycopg.Connection[Any]) -> None:
    """Statistics at once: the planner must not guess the freshly filled summary's size."""
    with conn.transaction():
        conn.execute("ANALYZE sp_job_latest")


def forget_dropped(cur: psycopg.Cursor[Any], start: datetime, end: datetime) -> int:
    """Drop the summary's rows of runs a dropped partition of [start, end) took with it (a detach and
    DROP fire no row trigger); rows of the runs the drop kept (copied back, same key) stay."""
    return cur.execute(
        "DELETE FROM sp_job_latest l WHERE l.partition_at >= %s AND l.partition_at < %s"
        " AND NOT EXISTS (SELECT 1 FROM sp_job_runs r WHERE r.id = l.run_id AND r.partition_at = l.partition_at)",
        (start, end),
    ).rowcount


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


_RUN_COLUMNS = sql.SQL(", ").join(sql.Identifier("r", f.name) for f in fields(RunRecord))
_GIVEN_JOBS = "WITH names(job_name) AS (SELECT DISTINCT unnest(%(names)s::text[]))"
# Every job the summary knows, by skipping through its job index: one probe per job.
_ALL_JOBS = (
    "WITH RECURSIVE names(job_name) AS ("
    " (SELECT job_name FROM sp_job_latest ORDER BY job_name LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT l.job_name FROM sp_job_latest l WHERE l.job_name > n.job_name ORDER BY l.job_name LIMIT 1)"
    " FROM names n WHERE n.job_name IS NOT NULL)"
)
# Per job, the newest matching row of the summary (a few dozen rows per job, read newest first), then
# that run's row from the ledger by its key: the partition is known, so one probe each.
_LATEST = (
    "{names} SELECT {cols} FROM names n"
    " CROSS JOIN LATERAL (SELECT run_id, partition_at FROM sp_job_latest l WHERE l.job_name = n.job_name{where}"
    " ORDER BY l.created_at DESC, l.run_id DESC LIMIT 1) l"
    " CROSS JOIN LATERAL (SELECT * FROM sp_job_runs r WHERE r.id = l.run_id AND r.partition_at = l.partition_at) r"
)


def _latest_per_job(
    conn: psycopg.Connection[Any],
    job_names: Sequence[str] | None,
    *,
    statuses: list[RunStatus] | None,
    triggers: Sequence[Trigger] | None = None,
) -> dict[str, RunRecord]:
    if (job_names is not None and not job_names) or (statuses is not None and not statuses):
        return {}
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"names": list(job_names or [])}
    for column, values in (("status", statuses), ("trigger", triggers)):
        if values is not None:
            where.append(sql.SQL(" AND l.{} = ANY(%({})s::text[])").format(sql.Identifier(column), sql.SQL(column)))
            params[column] = list(values)
    query = sql.SQL(_LATEST).format(
        names=sql.SQL(_ALL_JOBS if job_names is None else _GIVEN_JOBS), cols=_RUN_COLUMNS, where=sql.Composed(where)
    )
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return {row["job_name"]: RunRecord.from_row(row) for row in rows}


# Per job its newest statuses, aggregated in Postgres: one row per job, not one per mark.
_RECENT = (
    "SELECT n.job_name, s.statuses FROM unnest(%(names)s::text[]) AS n(job_name)"
    " CROSS JOIN LATERAL (SELECT array_agg(x.status ORDER BY x.created_at DESC, x.run_id DESC) AS statuses"
    " FROM (SELECT status, created_at, run_id FROM sp_job_latest l WHERE l.job_name = n.job_name"
    " ORDER BY l.created_at DESC, l.run_id DESC LIMIT %(per_job)s) x) s"
    " WHERE s.statuses IS NOT NULL"
)


def recent_statuses(
    conn: psycopg.Connection[Any], job_names: Sequence[str], per_job: int
) -> dict[str, list[RunStatus]]:
    """The statuses of each job's newest `per_job` runs (at most LATEST_KEPT), newest first: the
    dashboard's strip. A job without runs is absent."""
    if not job_names or per_job < 1:
        return {}
    if per_job > LATEST_KEPT:
        raise ValueError(f"the summary keeps the newest {LATEST_KEPT} runs of a job, not {per_job}")
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(_RECENT, {"names": list(job_names), "per_job": per_job}).fetchall()
    return {name: list(statuses) for name, statuses in rows}
