"""Runs and slots that end without an outcome from their job: reaped when their lease expired or no
worker claimed them, closed with the worker process that held them, or recorded as slots that will
not run (missed, skipped, refused)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sp_scheduler.store.records import COLUMNS, RunRecord, atomic, slot_run_id

log = logging.getLogger(__name__)

# The tail of each statement that ends runs: the closed rows, each through the alert state machine
# (sp_alert_observe in store/sql/functions.sql) in the same statement, so the alerts they cause commit
# with them.
_ALERTED = sql.SQL(" SELECT {cols}, sp_alert_observe(closed::sp_job_runs) AS alerted FROM closed").format(cols=COLUMNS)


def reap_lost(
    conn: psycopg.Connection[Any], *, sparing: Sequence[str] = (), queued_deadline: float | None = None
) -> list[RunRecord]:
    """Mark running rows whose lease expired as 'lost', and, given `queued_deadline` (seconds), queued
    rows no worker claimed within it ("never claimed": their message vanished, or no worker serves
    their queue). Concurrent reapers, and a worker claiming the run, skip each other's rows.

    `sparing` names worker processes the reaper knows to be alive (a worker's own pool processes):
    their runs are never reaped, whatever their leases say.
    """
    query = sql.SQL(
        "WITH expired AS ("
        " SELECT id AS expired_id FROM sp_job_runs"
        " WHERE status = 'running' AND lease_expires_at < clock_timestamp()"
        " AND coalesce(worker, '') <> ALL(%s::text[])"
        " FOR UPDATE SKIP LOCKED)"
        " , closed AS (UPDATE sp_job_runs SET status = 'lost', finished_at = clock_timestamp(),"
        " message = 'worker stopped heartbeating; lease expired at '"
        " || to_char(lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        " FROM expired WHERE id = expired_id RETURNING sp_job_runs.*)"
        "{alerted}"
    ).format(alerted=_ALERTED)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, (list(sparing),)).fetchall()
        lost = sorted((RunRecord.from_row(r) for r in rows), key=lambda r: r.created_at)
    for record in lost:
        log.warning(
            "run lost: lease expired",
            extra={"job": record.job_name, "run_id": record.id, "worker": record.worker},
        )
    if queued_deadline is not None:
        lost.extend(_reap_unclaimed(conn, queued_deadline))
    return lost


def _reap_unclaimed(conn: psycopg.Connection[Any], deadline: float) -> list[RunRecord]:
    """Queued runs older than `deadline` seconds become 'lost' with the reason "never claimed"."""
    query = sql.SQL(
        "WITH stale AS ("
        " SELECT id AS stale_id FROM sp_job_runs"
        " WHERE status = 'queued' AND enqueued_at < clock_timestamp() - make_interval(secs => %(deadline)s)"
        " FOR UPDATE SKIP LOCKED)"
        " , closed AS (UPDATE sp_job_runs SET status = 'lost', finished_at = clock_timestamp(), message = %(message)s"
        " FROM stale WHERE id = stale_id RETURNING sp_job_runs.*)"
        "{alerted}"
    ).format(alerted=_ALERTED)
    message = f"never claimed: no worker took the run within {deadline:g} s of its queueing (SP_QUEUED_DEADLINE)"
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"deadline": float(deadline), "message": message}).fetchall()
    unclaimed = sorted((RunRecord.from_row(r) for r in rows), key=lambda r: r.created_at)
    for record in unclaimed:
        log.warning(
            "run lost: never claimed",
            extra={"job": record.job_name, "run_id": record.id, "trigger": record.trigger, "deadline_s": deadline},
        )
    return unclaimed


def interrupt_runs(conn: psycopg.Connection[Any], *, workers: Sequence[str], message: str) -> list[RunRecord]:
    """Close the running runs of these worker processes as failed/interrupted (shutdown past its grace)."""
    return _close_running(conn, workers, status="failed", message=message, error="interrupted")


def end_process_runs(
    conn: psycopg.Connection[Any], *, worker: str, status: Literal["lost", "timeout"], message: str
) -> list[RunRecord]:
    """Close the running runs of one worker process that its worker saw die (or killed past its time
    limit), without waiting for their leases; a run already finished is left as it is."""
    return _close_running(conn, [worker], status=status, message=message, error=None)


def _close_running(
    conn: psycopg.Connection[Any], workers: Sequence[str], *, status: str, message: str, error: str | None
) -> list[RunRecord]:
    """End the runs these worker processes still hold as running, now, with this status and message."""
    if not workers:
        return []
    query = sql.SQL(
        "WITH closed AS (UPDATE sp_job_runs SET status = %s, error = %s, message = %s,"
        " finished_at = clock_timestamp(), lease_expires_at = NULL,"
        " duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint"
        " WHERE status = 'running' AND worker = ANY(%s) RETURNING sp_job_runs.*)"
        "{alerted}"
    ).format(alerted=_ALERTED)
    with atomic(conn), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, (status, error, message, list(workers))).fetchall()
    return [RunRecord.from_row(row) for row in rows]


def record_slot(
    conn: psycopg.Connection[Any],
    *,
    job_name: str,
    scheduled_for: datetime,
    status: Literal["missed", "skipped", "failed"],
    message: str,
) -> bool:
    """Record a slot that will not run (beat was down, it was skipped, a worker refused it); False if
    the slot has a row."""
    return record_slots(conn, job_name=job_name, slots=[scheduled_for], status=status, message=message) == 1


def record_slots(
    conn: psycopg.Connection[Any],
    *,
    job_name: str,
    slots: Sequence[datetime],
    status: Literal["missed", "skipped", "failed"],
    message: str,
) -> int:
    """Record many slots that will not run in one statement; returns how many were new."""
    if not slots:
        return 0
    # One statement (so one transaction on an autocommit connection): the rows, then their alerts: one
    # 'missed' event for the batch, or each refused ('failed') slot through the alert state machine.
    with atomic(conn), conn.cursor() as cur:
        cur.execute(
            "WITH added AS (INSERT INTO sp_job_runs"
            " (id, job_name, trigger, scheduled_for, status, message, finished_at, partition_at)"
            " SELECT id, %(job)s, 'schedule', slot, %(status)s, %(message)s, clock_timestamp(), slot"
            " FROM unnest(%(ids)s::uuid[], %(slots)s::timestamptz[]) AS s(id, slot) ON CONFLICT DO NOTHING"
            " RETURNING *),"
            " refused AS (SELECT sp_alert_observe(added::sp_job_runs) FROM added WHERE status = 'failed')"
            " SELECT (SELECT count(*) FROM added),"
            " (SELECT count(*) FROM refused),"
            " (SELECT sp_alert_missed(%(job)s, (array_agg(id ORDER BY scheduled_for DESC))[1], count(*)::int,"
            "  min(scheduled_for), max(scheduled_for), %(message)s) FROM added WHERE status = 'missed')",
            {
                "job": job_name,
                "status": status,
                "message": message,
                "ids": [slot_run_id(job_name, slot) for slot in slots],
                "slots": list(slots),
            },
        )
        row = cur.fetchone()
        return int(row[0]) if row is not None else 0
