"""The runs ledger: one row per run and per slot that did not run, claimed before a job executes.

Every timestamp comes from the database clock (`clock_timestamp()`) so all workers and beat agree.
A scheduled slot's id is derived from the job name and instant (`slot_run_id`), and a partial unique
index on `(job_name, scheduled_for)` turns "a slot delivered twice runs once" into a constraint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import Trigger
from sp_scheduler.run_status import RUN_STATUSES, FinishStatus, RunStatus
from sp_scheduler.store.logs import LogRecordRow, log_batch
from sp_scheduler.store.records import (
    COLUMNS,
    Claim,
    ClaimOutcome,
    Overlap,
    RunOutcome,
    RunRecord,
    atomic,
    fetch_one,
    fetch_returned,
    run_uuid,
    slot_run_id,
    storable,
    where_clause,
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
    """Record a 'queued' run before its Celery message is sent (manual and startup runs)."""
    query = sql.SQL(
        "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, enqueued_at, params)"
        " VALUES (%s, %s, %s, %s, 'queued', clock_timestamp(), %s) RETURNING {cols}"
    ).format(cols=COLUMNS)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        return fetch_returned(cur, query, (run_id, job_name, trigger, scheduled_for, Jsonb(dict(params))))


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
    if trigger == "schedule" and scheduled_for is None:
        raise ValueError("a scheduled run needs its slot (scheduled_for)")
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


_SELECT_BY_ID = sql.SQL("SELECT {cols} FROM sp_job_runs WHERE id = %s").format(cols=COLUMNS)


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
        if outcome is not None and _already_holds(record, outcome):
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


def _already_holds(record: RunRecord, outcome: RunOutcome) -> bool:
    """Whether the row already carries exactly this outcome."""
    return (record.status, record.message, record.items_processed, record.items_failed, record.error) == (
        outcome.status,
        storable(outcome.message),
        outcome.items_processed,
        outcome.items_failed,
        storable(outcome.error),
    ) and (outcome.duration_ms is None or record.duration_ms == outcome.duration_ms)


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
        " UPDATE sp_job_runs SET status = 'lost', finished_at = clock_timestamp(),"
        " message = 'worker stopped heartbeating; lease expired at '"
        " || to_char(lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        " FROM expired WHERE id = expired_id RETURNING {cols}"
    ).format(cols=COLUMNS)
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
        " UPDATE sp_job_runs SET status = 'lost', finished_at = clock_timestamp(), message = %(message)s"
        " FROM stale WHERE id = stale_id RETURNING {cols}"
    ).format(cols=COLUMNS)
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
        "UPDATE sp_job_runs SET status = %s, error = %s, message = %s,"
        " finished_at = clock_timestamp(), lease_expires_at = NULL,"
        " duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint"
        " WHERE status = 'running' AND worker = ANY(%s) RETURNING {cols}"
    ).format(cols=COLUMNS)
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
    with atomic(conn), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, message, finished_at)"
            " SELECT id, %s, 'schedule', slot, %s, %s, clock_timestamp()"
            " FROM unnest(%s::uuid[], %s::timestamptz[]) AS s(id, slot) ON CONFLICT DO NOTHING",
            (job_name, status, message, [slot_run_id(job_name, slot) for slot in slots], list(slots)),
        )
        return cur.rowcount


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
    limit: int = 50,
) -> list[RunRecord]:
    """Runs newest first, optionally of one job and/or one status; each filter has its own index."""
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
    conn: psycopg.Connection[Any], statuses: Sequence[RunStatus], job_names: Sequence[str] | None = None
) -> dict[str, RunRecord]:
    """The newest row of each job among `statuses`: "last success", "last failure" in `jobs status`."""
    return _latest_per_job(conn, job_names, statuses=list(statuses))


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
    " ORDER BY job_name, status, created_at DESC LIMIT 1) r"
    " WHERE r.job_name = n.job_name AND r.status = s.status"
)


def _latest_per_job(
    conn: psycopg.Connection[Any], job_names: Sequence[str] | None, *, statuses: list[RunStatus] | None
) -> dict[str, RunRecord]:
    """One index probe per job (per job and status when filtering) instead of sorting the whole table."""
    if (job_names is not None and not job_names) or (statuses is not None and not statuses):
        return {}
    newest = _NEWEST_OF_JOB if statuses is None else _NEWEST_OF_JOB_AND_STATUS
    query = sql.SQL(
        "{names} SELECT DISTINCT ON (r.job_name) r.* FROM names n {newest} ORDER BY r.job_name, r.created_at DESC"
    ).format(names=_ALL_JOB_NAMES if job_names is None else _GIVEN_JOB_NAMES, newest=newest.format(cols=COLUMNS))
    params = {"names": list(job_names or []), "statuses": list(statuses or [])}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return {row["job_name"]: RunRecord.from_row(row) for row in rows}
