"""Reading the ledger: one run and recent runs, each by an index whose cost does not grow with the ledger
(the newest run of each job comes from the summary: store/latest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
