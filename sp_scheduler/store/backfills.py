"""Backfill runs in the ledger: queue runs for past slots, and read which slots already have a row.

A backfill run stands for one cron slot as a scheduled run does: its id is the slot's id
(`slot_run_id`), its partition is its slot, and the slot index (migration 0011) holds at most one
`schedule` or `backfill` row per (job, slot). So queueing is one `INSERT ... ON CONFLICT DO NOTHING`:
a slot that has a row, or gains one from a racing backfill or from beat meanwhile, is left out, and
the rows returned are exactly the runs this call queued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler.store.records import COLUMNS, RunRecord, atomic, slot_run_id

_ENQUEUE = sql.SQL(
    "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, enqueued_at, params, partition_at)"
    " SELECT s.id, %s, 'backfill', s.slot, 'queued', clock_timestamp(), %s, s.slot"
    " FROM unnest(%s::uuid[], %s::timestamptz[]) AS s(id, slot) ORDER BY s.slot"
    " ON CONFLICT DO NOTHING RETURNING {cols}"
).format(cols=COLUMNS)

# partition_at equals the slot for every row that can hold one, so the range prunes partitions.
_HOLDERS = sql.SQL(
    "SELECT {cols} FROM sp_job_runs WHERE job_name = %s AND scheduled_for = ANY(%s::timestamptz[])"
    " AND partition_at BETWEEN %s AND %s AND trigger IN ('schedule', 'backfill')"
).format(cols=COLUMNS)


def enqueue_backfill(
    conn: psycopg.Connection[Any], *, job_name: str, slots: Sequence[datetime], params: Mapping[str, Any]
) -> list[RunRecord]:
    """Queue a backfill run for each slot that has no row yet, in one statement; the runs queued, by slot."""
    if not slots:
        return []
    ids = [slot_run_id(job_name, slot) for slot in slots]
    with atomic(conn), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_ENQUEUE, (job_name, Jsonb(dict(params)), ids, list(slots))).fetchall()
    return sorted((RunRecord.from_row(row) for row in rows), key=_slot_of)


def slot_holders(
    conn: psycopg.Connection[Any], *, job_name: str, slots: Sequence[datetime]
) -> dict[datetime, RunRecord]:
    """The scheduled or backfill row that holds each of these slots, by slot (in UTC); free slots are absent."""
    if not slots:
        return {}
    with atomic(conn), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_HOLDERS, (job_name, list(slots), min(slots), max(slots))).fetchall()
    return {_slot_of(record): record for record in map(RunRecord.from_row, rows)}


def _slot_of(record: RunRecord) -> datetime:
    if record.scheduled_for is None:  # the slot index holds no row without a slot (CHECK in migration 0011)
        raise RuntimeError(f"run {record.id} holds no slot")
    return record.scheduled_for.astimezone(UTC)


def release_backfill(conn: psycopg.Connection[Any], runs: Sequence[RunRecord]) -> int:
    """Delete queued backfill runs whose message was never sent, so their slots are free again; how many.

    No worker can hold such a run (no message names it), and no run happened: the row only reserved
    the slot while its message was on the way. A run a worker has claimed is never touched.
    """
    if not runs:
        return 0
    slots = [_slot_of(run) for run in runs]
    with atomic(conn), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM sp_job_runs WHERE id = ANY(%s::uuid[]) AND partition_at = ANY(%s::timestamptz[])"
            " AND trigger = 'backfill' AND status = 'queued'",
            ([run.id for run in runs], slots),
        )
        return cur.rowcount
