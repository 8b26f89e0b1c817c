"""The logs table: log lines from jobs and processes, written in batches and read by `logs view`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler.errors import UsageError
from sp_scheduler.store.records import atomic, run_uuid, storable, where_clause


@dataclass(frozen=True, slots=True)
class LogRecordRow:
    """One log line as stored; `fields` holds the record's structured `extra=` values."""

    created_at: datetime
    level: str
    logger: str
    message: str
    job_name: str | None = None
    run_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LogRecordRow:
        """Build from a dict row, `created_at` in UTC and `run_id` as a string."""
        return cls(
            created_at=row["created_at"].astimezone(UTC),
            level=row["level"],
            logger=row["logger"],
            message=row["message"],
            job_name=row["job_name"],
            run_id=str(row["run_id"]) if row["run_id"] is not None else None,
            fields=dict(row["fields"] or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, `created_at` as an ISO-8601 string."""
        return {
            "created_at": self.created_at.isoformat(),
            "level": storable(self.level),
            "logger": storable(self.logger),
            "message": storable(self.message),
            "job_name": storable(self.job_name),
            "run_id": self.run_id,
            "fields": storable(dict(self.fields)),
        }


INSERT_LOGS = (
    "INSERT INTO sp_logs (created_at, level, logger, message, job_name, run_id, fields)"
    " SELECT created_at, level, logger, message, job_name, run_id, coalesce(fields, '{}')"
    " FROM jsonb_to_recordset(%s::jsonb)"
    " AS line(created_at timestamptz, level text, logger text, message text, job_name text, run_id uuid, fields jsonb)"
)


def log_batch(rows: Sequence[LogRecordRow]) -> Jsonb:
    """The rows as one JSON array, the parameter of INSERT_LOGS.

    One document instead of seven typed arrays: adapting arrays costs the worker more CPU than the
    whole statement costs Postgres, and this runs at the end of every run.
    """
    return Jsonb([row.to_dict() for row in rows])


def write_logs(conn: psycopg.Connection[Any], rows: Sequence[LogRecordRow]) -> int:
    """Insert a batch in one statement (arrays unnested server-side); returns how many were written."""
    if not rows:
        return 0
    with atomic(conn), conn.cursor() as cur:
        cur.execute(INSERT_LOGS, (log_batch(rows),))
    return len(rows)


def level_number(name: str) -> int:
    """Python's number for a level name (the `levelno` column uses the same numbers)."""
    number = logging.getLevelNamesMapping().get(name.upper())
    if number is None:
        raise UsageError(f"unknown log level {name!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return number


def query_logs(
    conn: psycopg.Connection[Any],
    *,
    min_level: str | None = None,
    since: datetime | None = None,
    job: str | None = None,
    run_id: str | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[tuple[int, LogRecordRow]]:
    """Log lines with their ids, newest first; with `after_id` (for --follow) the lines after it, oldest first."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if min_level is not None:
        conditions.append(sql.SQL("levelno >= %s"))
        params.append(level_number(min_level))
    if since is not None:
        conditions.append(sql.SQL("created_at >= %s"))
        params.append(since)
    if job is not None:
        conditions.append(sql.SQL("job_name = %s"))
        params.append(job)
    if run_id is not None:
        conditions.append(sql.SQL("run_id = %s"))
        params.append(run_uuid(run_id))
    if after_id is not None:
        conditions.append(sql.SQL("id > %s"))
        params.append(after_id)
    order = sql.SQL("id ASC" if after_id is not None else "created_at DESC, id DESC")
    query = sql.SQL(
        "SELECT id, created_at, level, logger, message, job_name, run_id, fields FROM sp_logs{where}"
        " ORDER BY {order} LIMIT %s"
    ).format(where=where_clause(conditions), order=order)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit]).fetchall()
    return [(int(row["id"]), LogRecordRow.from_row(row)) for row in rows]
