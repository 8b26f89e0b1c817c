"""Typed records of the runs ledger and the row plumbing shared by its queries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from sp_scheduler.errors import UnknownRun
from sp_scheduler.jobs import Trigger
from sp_scheduler.run_status import FINISHED_STATUSES, FinishStatus, RunStatus

Overlap = Literal["skip", "allow"]
ClaimOutcome = Literal["run", "duplicate", "skipped"]

# Fixed namespace: beat and every worker must derive the same id for the same slot, forever.
_SLOT_NAMESPACE = uuid.UUID("5f0c6a8e-2d4b-5c1e-9a7f-3b8d2e6c4a10")


def as_utc(value: datetime | None) -> datetime | None:
    """Timestamps leave the store in UTC, whatever the session's TimeZone."""
    return value.astimezone(UTC) if value is not None else None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of `sp_job_runs`: a run, or a slot recorded as skipped or missed."""

    id: str
    job_name: str
    trigger: Trigger
    scheduled_for: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    status: RunStatus
    message: str | None
    items_processed: int
    items_failed: int
    duration_ms: int | None
    error: str | None
    traceback: str | None
    worker: str | None
    attempt: int
    lease_expires_at: datetime | None
    params: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """Build from a dict row; datetimes normalised to UTC whatever the session time zone."""
        return cls.from_values([row[name] for name in _RECORD_FIELDS])

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> RunRecord:
        """Build from the columns of `sp_job_runs` in table order (`(c.run).*` of the ledger's functions).

        The claim and outcome paths read rows this way: a tuple row costs psycopg less than a dict row,
        and they run on every run. The table's column order is RunRecord's field order (tested).
        Datetimes are normalised to UTC whatever the session time zone.
        """
        (id_, job_name, trigger, scheduled_for, enqueued_at, started_at, finished_at, status, message) = values[:9]
        (items_processed, items_failed, duration_ms, error, traceback, worker, attempt) = values[9:16]
        (lease_expires_at, params, created_at) = values[16:19]
        return cls(
            str(id_),
            job_name,
            trigger,
            as_utc(scheduled_for),
            as_utc(enqueued_at),
            as_utc(started_at),
            as_utc(finished_at),
            status,
            message,
            items_processed,
            items_failed,
            duration_ms,
            error,
            traceback,
            worker,
            attempt,
            as_utc(lease_expires_at),
            dict(params or {}),
            created_at.astimezone(UTC),
        )

    @property
    def finished(self) -> bool:
        """Whether the run has reached a final status."""
        return self.status in FINISHED_STATUSES

    @property
    def lateness_ms(self) -> int | None:
        """How long after its slot the run started; None for manual runs and runs that never started."""
        if self.started_at is None or self.scheduled_for is None:
            return None
        return int((self.started_at - self.scheduled_for).total_seconds() * 1000)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO-8601 strings, everything else as stored."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        out["params"] = dict(self.params)
        out["lateness_ms"] = self.lateness_ms
        return out


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim_run` decided: run it, it is a duplicate delivery, or it was recorded as skipped."""

    outcome: ClaimOutcome
    record: RunRecord | None
    reason: str | None
    finished: Sequence[RunRecord] = ()  # outcomes recorded with the claim (`claim_run(finishing=...)`)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, as the worker hands it to the ledger (`finish_runs`).

    `elapsed_seconds` is the worker's measure from the claim to the end of the run: the ledger dates
    `finished_at` from the claim's `started_at` by it, so an outcome written late (batched, or after
    Postgres came back) still carries the moment the run ended.
    """

    run_id: str
    status: FinishStatus
    message: str | None
    items_processed: int = 0
    items_failed: int = 0
    duration_ms: int | None = None
    error: str | None = None
    traceback: str | None = None
    elapsed_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the batch travels as one JSON document); `id` is the run id."""
        return {
            "id": self.run_id,
            "status": self.status,
            "message": storable(self.message),
            "items_processed": self.items_processed,
            "items_failed": self.items_failed,
            "duration_ms": self.duration_ms,
            "error": storable(self.error),
            "traceback": storable(self.traceback),
            "elapsed": self.elapsed_seconds,
        }


def storable(value: Any) -> Any:
    """`value` (text, or JSON-like) with each NUL character replaced by U+FFFD.

    Postgres text and jsonb cannot hold NUL, and a job's message, exception or log line may carry one
    (from a file, a web page). Left in, Postgres refuses the whole statement, and with it the next
    claim that carries the outcome, whichever job that claim is for.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(RunRecord))
# The field names in order, worked out once (`RunRecord.from_row` reads them for every dict row).
_RECORD_FIELDS = tuple(f.name for f in fields(RunRecord))


Query = str | sql.SQL | sql.Composed
QueryParams = Sequence[Any] | Mapping[str, Any]


def fetch_one(cur: psycopg.Cursor[dict[str, Any]], query: Query, params: QueryParams) -> RunRecord | None:
    """The single row a query returns, as a record; None when there is none."""
    row = cur.execute(query, params).fetchone()
    return RunRecord.from_row(row) if row is not None else None


def fetch_returned(cur: psycopg.Cursor[dict[str, Any]], query: Query, params: QueryParams) -> RunRecord:
    """The row of an INSERT/UPDATE ... RETURNING that cannot miss."""
    record = fetch_one(cur, query, params)
    if record is None:
        raise RuntimeError("statement returned no row")
    return record


def where_clause(conditions: Sequence[sql.Composable]) -> sql.Composable:
    """` WHERE a AND b ...`, or nothing when there are no conditions."""
    if not conditions:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)


def slot_run_id(job_name: str, scheduled_for: datetime) -> str:
    """The run id of a scheduled slot: uuid5 of the job name and the slot's UTC instant."""
    if scheduled_for.tzinfo is None:
        raise ValueError("scheduled_for must be timezone-aware")
    instant = scheduled_for.astimezone(UTC).isoformat(timespec="microseconds")
    return str(uuid.uuid5(_SLOT_NAMESPACE, f"{job_name}@{instant}"))


def run_uuid(run_id: str) -> uuid.UUID:
    """Parse a run id from a user or a message; a malformed one is simply not a run we know."""
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        raise UnknownRun(f"unknown run {run_id!r}: not a run id") from None


def atomic(conn: psycopg.Connection[Any]) -> AbstractContextManager[object]:
    """One transaction around a store call; on an autocommit connection a single statement already is one.

    The worker's ledger pool uses autocommit so its one-statement calls (claim, heartbeat, finish) cost
    one round trip each instead of three (BEGIN, statement, COMMIT).
    """
    return nullcontext() if conn.autocommit else conn.transaction()


def already_holds(record: RunRecord, outcome: RunOutcome) -> bool:
    """Whether the row already carries exactly this outcome (a retried write, recognised by both ledgers)."""
    return (record.status, record.message, record.items_processed, record.items_failed, record.error) == (
        outcome.status,
        storable(outcome.message),
        outcome.items_processed,
        outcome.items_failed,
        storable(outcome.error),
    ) and (outcome.duration_ms is None or record.duration_ms == outcome.duration_ms)
