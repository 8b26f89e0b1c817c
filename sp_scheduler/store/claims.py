"""The life of a run in the ledger: queued (manual, startup and backfill runs), claimed under a lease, leases
renewed while it goes on, its outcome recorded.

Every timestamp comes from the database clock (`clock_timestamp()`) so all workers and beat agree.
A scheduled slot's id is derived from the job name and instant (`slot_run_id`), and a partial unique
index on `(job_name, scheduled_for)` turns "a slot delivered twice runs once" into a constraint. The
claim and the outcomes are functions of store/sql/functions.sql, one statement and one round trip each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, get_args

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import SLOT_TRIGGERS, Trigger
from sp_scheduler.run_status import FinishStatus
from sp_scheduler.store.logs import LogRecordRow, log_batch
from sp_scheduler.store.records import (
    COLUMNS,
    Claim,
    ClaimOutcome,
    Overlap,
    RunOutcome,
    RunRecord,
    already_holds,
    atomic,
    fetch_returned,
    run_uuid,
)

log = logging.getLogger(__name__)


def enqueue_run(
    conn: psycopg.Connection[Any],
    *,
    run_id: str,
    job_name: str,
    trigger: Trigger,
    scheduled_for: datetime | None,
    params: Mapping[str, Any],
) -> RunRecord:
    """Record a 'queued' run before its Celery message is sent (manual, startup and backfill runs).

    A taken id is a `UniqueViolation`, as when the id alone was the primary key: the ledger is
    partitioned (migration 0009), so the id is checked under a lock on it, the one `sp_claim_run` takes
    before it inserts an id.
    """
    if trigger in SLOT_TRIGGERS and scheduled_for is None:
        raise ValueError(f"a {trigger} run needs its slot (scheduled_for)")
    # A slot's row is partitioned by its slot, so the slot's unique index sees it (migrations 0009, 0011).
    partition_at = scheduled_for if trigger in SLOT_TRIGGERS else None
    query = sql.SQL(
        "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, enqueued_at, params, partition_at)"
        " VALUES (%s, %s, %s, %s, 'queued', clock_timestamp(), %s, coalesce(%s, clock_timestamp())) RETURNING {cols}"
    ).format(cols=COLUMNS)
    values = (run_id, job_name, trigger, scheduled_for, Jsonb(dict(params)), partition_at)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_LOCK_RUN_ID, (run_id,))
        if cur.execute("SELECT 1 FROM sp_job_runs WHERE id = %s", (run_id,)).fetchone() is not None:
            raise psycopg.errors.UniqueViolation(f"run {run_id} already exists")
        return fetch_returned(cur, query, values)


# The lock sp_claim_run takes before it inserts a run that is not a slot (store/sql/functions.sql).
_LOCK_RUN_ID = "SELECT pg_advisory_xact_lock(hashtextextended('sp-scheduler:run:' || %s::uuid::text, 0))"


_CLAIM = "SELECT c.outcome, c.reason, (c.run).* FROM sp_claim_run(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS c"
# The same claim, after recording outcomes and log lines: one statement, one commit (store/sql/functions.sql).
_CLAIM_AFTER = (
    "SELECT c.outcome, c.reason, (c.run).* FROM sp_claim_run_after(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS c"
)
_FINISH = "SELECT c.outcome, c.reason, (c.run).* FROM sp_finish_runs(%s, %s) AS c"


def claim_run(
    conn: psycopg.Connection[Any],
    *,
    run_id: str,
    job_name: str,
    trigger: Trigger,
    scheduled_for: datetime | None,
    params: Mapping[str, Any],
    worker: str,
    lease_seconds: float,
    overlap: Overlap,
    enabled: bool,
    use_override: bool = False,
    finishing: Sequence[RunOutcome] = (),
    logs: Sequence[LogRecordRow] = (),
    retrying: bool = False,
) -> Claim:
    """Claim a delivery in one round trip: run it, recognise a duplicate, or record it as skipped.

    For `overlap="skip"`, `sp_claim_run` (store/sql/functions.sql) takes a per-job advisory lock, so the
    overlap check and the insert cannot interleave between workers. With `use_override`, an
    enable/disable override in `sp_job_state` wins over `enabled` (scheduled slots). For a duplicate,
    `record` is the row that already holds the slot or id. Outcomes in `finishing` (and `logs`) are
    recorded first, in the same statement and commit, as `finish_runs` would; their rows come back in
    `Claim.finished`.

    `retrying` says an earlier attempt of this very claim may have committed before its connection
    broke, and that the caller has no earlier run of this id still finishing: a running row of this run
    held by `worker` is then that attempt's claim, so it is returned as "run" rather than as a duplicate
    (which would leave the job unrun and its run to be reaped as lost).
    """
    if trigger in SLOT_TRIGGERS and scheduled_for is None:
        raise ValueError(f"a {trigger} run needs its slot (scheduled_for)")
    claim_args = (
        run_uuid(run_id),
        job_name,
        trigger,
        scheduled_for,
        Jsonb(dict(params)),
        worker,
        float(lease_seconds),
        overlap,
        enabled,
        use_override,
    )
    carried = finishing or logs
    query, values = (_CLAIM_AFTER, (*_finish_args(finishing, logs), *claim_args)) if carried else (_CLAIM, claim_args)
    with atomic(conn), conn.cursor() as cur:
        rows = cur.execute(query, values).fetchall()
    if not rows or rows[-1][0] not in get_args(ClaimOutcome):
        raise RuntimeError("sp_claim_run returned no claim")
    finished = _finished_records(finishing, rows[:-1])
    outcome: ClaimOutcome = rows[-1][0]
    reason: str | None = rows[-1][1]
    record = RunRecord.from_values(rows[-1][2:])
    extra = {"job": job_name, "run_id": record.id, "reason": reason}
    if outcome == "duplicate" and retrying and _claimed_by(record, run_id, worker):
        log.info("claim committed before its connection broke; running it", extra=extra)
        return Claim("run", record, None, finished)
    if outcome == "duplicate":
        log.info("duplicate delivery ignored", extra=extra)
    elif outcome == "skipped":
        log.info("run skipped", extra=extra)
    return Claim(outcome, record, reason, finished)


def heartbeat(conn: psycopg.Connection[Any], run_ids: Sequence[str], lease_seconds: float) -> int:
    """Extend the leases of these runs that are still running; returns how many were extended."""
    return len(renew_leases(conn, run_ids, lease_seconds))


def renew_leases(conn: psycopg.Connection[Any], run_ids: Sequence[str], lease_seconds: float) -> set[str]:
    """Extend the leases of these runs that are still running; returns the ids extended (the rest
    are no longer running: finished, or marked lost by a reaper)."""
    if not run_ids:
        return set()
    with atomic(conn), conn.cursor() as cur:
        rows = cur.execute(
            "UPDATE sp_job_runs SET lease_expires_at = clock_timestamp() + make_interval(secs => %s)"
            " WHERE id = ANY(%s::uuid[]) AND status = 'running' RETURNING id",
            (float(lease_seconds), list(run_ids)),
        ).fetchall()
    return {str(row[0]) for row in rows}


def finish_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    *,
    status: FinishStatus,
    message: str | None,
    items_processed: int,
    items_failed: int,
    duration_ms: int | None,
    error: str | None = None,
    traceback: str | None = None,
    logs: Sequence[LogRecordRow] = (),
) -> RunRecord:
    """Record one run's outcome (and its last log lines); see `finish_runs`. `UnknownRun` if there is no such run."""
    outcome = RunOutcome(run_id, status, message, items_processed, items_failed, duration_ms, error, traceback)
    records = finish_runs(conn, [outcome], logs=logs)
    if not records:
        raise UnknownRun(f"unknown run {run_id}")
    return records[0]


def finish_runs(
    conn: psycopg.Connection[Any], outcomes: Sequence[RunOutcome], *, logs: Sequence[LogRecordRow] = ()
) -> list[RunRecord]:
    """Record many runs' outcomes and their log lines in one statement; returns the rows, in order.

    Allowed from 'running'; from 'lost' (a run the reaper gave up on that then really finished records
    its true outcome); and from 'queued' (a run whose message could not be published is closed as
    failed). A run already finished otherwise is left as it is and returned as it stands; an id the
    ledger does not hold is logged and left out.
    """
    if not outcomes:
        return []
    with atomic(conn), conn.cursor() as cur:
        rows = cur.execute(_FINISH, _finish_args(outcomes, logs)).fetchall()
    return _finished_records(outcomes, rows)


def _claimed_by(record: RunRecord, run_id: str, worker: str) -> bool:
    """Whether `record` is run `run_id`, still running, claimed by `worker`."""
    return record.id == str(run_uuid(run_id)) and record.status == "running" and record.worker == worker


def _finish_args(outcomes: Sequence[RunOutcome], logs: Sequence[LogRecordRow]) -> tuple[Jsonb, Jsonb]:
    """The two JSON documents `sp_finish_runs` takes: outcomes and log lines."""
    for outcome in outcomes:
        if outcome.status not in get_args(FinishStatus):
            raise ValueError(f"cannot finish a run as {outcome.status!r}")
        run_uuid(outcome.run_id)  # a malformed id is UnknownRun here, not a database error
    return Jsonb([outcome.to_dict() for outcome in outcomes]), log_batch(logs)


def _finished_records(outcomes: Sequence[RunOutcome], rows: Sequence[tuple[Any, ...]]) -> list[RunRecord]:
    """`sp_finish_runs`'s rows as records in the order of `outcomes`, saying which were not recorded."""
    by_id = {str(run_uuid(outcome.run_id)): outcome for outcome in outcomes}
    found: dict[str, RunRecord] = {}
    for row in rows:
        kind, reason = row[0], row[1]
        record = RunRecord.from_values(row[2:])
        found[record.id] = record
        if kind == "finished":
            continue
        extra = {"job": record.job_name, "run_id": record.id, "status": record.status, "reason": reason}
        outcome = by_id.get(record.id)
        if outcome is not None and already_holds(record, outcome):
            # The same outcome, written before: a retry after a connection broke between commit and reply.
            log.info("outcome already recorded", extra=extra)
        else:
            log.warning("run already finished; outcome not recorded", extra=extra)
    ordered = []
    for outcome in outcomes:
        stored = found.get(str(run_uuid(outcome.run_id)))
        if stored is None:
            log.warning("outcome of an unknown run not recorded", extra={"run_id": outcome.run_id})
        else:
            ordered.append(stored)
    return ordered
