"""The weekly partitions of `sp_job_runs` and `sp_logs`: listed, created ahead of need, dropped whole.

Both tables are range-partitioned by time (migration 0009): a partition per week, Monday 00:00 UTC to
the next, named `<table>_pYYYYMMDD` after its first day, and a DEFAULT partition for rows outside them.
Weekly (docs/decisions.md, "Retention by partition"): every claim's overlap check and every lookup by
id visits each partition, so their number must stay small (about five for a month), while a dropped
partition overshoots the retention by at most a week.

Locks are what matter on a live ledger. A partition is created standalone and ATTACHed, which takes
only SHARE UPDATE EXCLUSIVE on the parent (claims go on); rows the DEFAULT partition holds in its
range move in the same transaction. A partition is dropped by DETACH (ACCESS EXCLUSIVE on the parent,
held for milliseconds: check, copy the few rows still needed, commit) and then DROP of the detached
table, which no longer concerns the parent. Every such statement runs under a short `lock_timeout`,
so a pass that meets a long transaction gives up on that partition instead of queueing claims behind it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

PERIOD = timedelta(days=7)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: partitions start on Mondays, 00:00 UTC
_NAME = re.compile(r"_p(\d{8})$")
LOCK_TIMEOUT = "100ms"  # how long a DDL statement may wait for its lock before the pass moves on
AHEAD = 2  # partitions kept ready beyond the current one


@dataclass(frozen=True, slots=True)
class Table:
    """A partitioned ledger table: its name, its partition key and which rows forbid a drop."""

    name: str
    key: str
    active: str | None = None  # SQL condition: rows that keep their partition from being dropped

    @property
    def default(self) -> str:
        return f"{self.name}_default"


RUNS = Table("sp_job_runs", "partition_at", active="status IN ('queued', 'running')")
LOGS = Table("sp_logs", "created_at")
TABLES = (RUNS, LOGS)


@dataclass(frozen=True, slots=True)
class Partition:
    """One dated partition: [start, end)."""

    name: str
    start: datetime
    end: datetime


def period_start(at: datetime) -> datetime:
    """The start of the week (Monday 00:00 UTC) holding `at`."""
    return _EPOCH + ((at.astimezone(UTC) - _EPOCH) // PERIOD) * PERIOD


def partition_name(table: Table, start: datetime) -> str:
    return f"{table.name}_p{start:%Y%m%d}"


def partitions(conn: psycopg.Connection[Any], table: Table) -> list[Partition]:
    """The table's dated partitions, oldest first (the DEFAULT partition is not among them)."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            (table.name,),
        ).fetchall()
    found = []
    for (name,) in rows:
        match = _NAME.search(name)
        if match is not None:
            start = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            found.append(Partition(name, start, start + PERIOD))
    return sorted(found, key=lambda p: p.start)


def database_now(conn: psycopg.Connection[Any]) -> datetime:
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def ensure_partitions(conn: psycopg.Connection[Any], now: datetime | None = None, *, ahead: int = AHEAD) -> list[str]:
    """Create the current week's partition and `ahead` more of each table, where missing; their names.

    Rows the DEFAULT partition holds in a new partition's range move into it in the same transaction.
    A partition whose lock cannot be had at once is left for the next call (logged).
    """
    now = now or database_now(conn)
    created = []
    for table in TABLES:
        have = {p.start for p in partitions(conn, table)}
        for k in range(ahead + 1):
            start = period_start(now) + k * PERIOD
            if start not in have and _create(conn, table, start, start + PERIOD):
                created.append(partition_name(table, start))
    return created


def _stored_columns(cur: psycopg.Cursor[tuple[Any, ...]], table: str, alias: str | None = None) -> sql.Composable:
    """The columns a row is copied by: all but generated ones, which Postgres computes again."""
    rows = cur.execute(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (table,),
    ).fetchall()
    return sql.SQL(", ").join(sql.Identifier(*([alias] if alias else []), name) for (name,) in rows)


def _create(conn: psycopg.Connection[Any], table: Table, start: datetime, end: datetime) -> bool:
    name = partition_name(table, start)
    ident, parent, default = sql.Identifier(name), sql.Identifier(table.name), sql.Identifier(table.default)
    in_range = sql.SQL("{key} >= %(start)s AND {key} < %(end)s").format(key=sql.Identifier(table.key))
    bounds = {"start": start, "end": end}
    try:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)"
                ).format(ident, parent)
            )
            columns = _stored_columns(cur, table.name)
            moved = cur.execute(
                sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {}").format(
                    ident, default, in_range, cols=columns
                ),
                bounds,
            ).rowcount
            if moved:
                cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(default, in_range), bounds)
            cur.execute(  # DDL takes no bound parameters: the bounds are literals
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    parent, ident, sql.Literal(start), sql.Literal(end)
                )
            )
        with conn.transaction():  # statistics from the start: the planner never guesses a new partition's size
            conn.execute(sql.SQL("ANALYZE {}").format(ident))
    except (
        errors.LockNotAvailable,
        errors.DuplicateTable,
        errors.InvalidObjectDefinition,
    ) as exc:  # busy, raced, overlap
        log.warning("partition not created", extra={"partition": name, "reason": str(exc).strip()})
        return False
    log.info("partition created", extra={"partition": name, "moved_from_default": moved})
    return True


@dataclass(frozen=True, slots=True)
class Keep:
    """Rows of a partition that must survive its drop: each job's rows from `since` on."""

    jobs: Sequence[str]
    since: Sequence[datetime]


def drop_partition(conn: psycopg.Connection[Any], table: Table, partition: Partition, keep: Keep) -> str | None:
    """Drop one partition; None when done, else why it stays (an active run, a lock not had).

    The rows `keep` names are copied back into the table first, in the transaction that detaches the
    partition, so they land in the DEFAULT partition (no dated partition covers that range any more).
    """
    ident, parent = sql.Identifier(partition.name), sql.Identifier(table.name)
    try:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, ident))
            if table.active is not None:
                # Checked under the detach's lock: no claim or outcome can touch these rows meanwhile.
                row = cur.execute(
                    sql.SQL("SELECT id FROM {} WHERE {} LIMIT 1").format(ident, sql.SQL(table.active))
                ).fetchone()
                if row is not None:
                    raise _Stays(f"holds active run {row[0]}")
            copied = 0
            if keep.jobs:
                copied = cur.execute(
                    sql.SQL(
                        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} t"
                        " JOIN unnest(%s::text[], %s::timestamptz[]) AS k(job, since)"
                        " ON t.job_name = k.job AND t.created_at >= k.since"
                    ).format(parent, _stored_columns(cur, table.name), _stored_columns(cur, table.name, "t"), ident),
                    (list(keep.jobs), list(keep.since)),
                ).rowcount
    except _Stays as why:
        log.info("partition kept", extra={"partition": partition.name, "reason": str(why)})
        return str(why)
    except errors.LockNotAvailable:
        log.warning("partition kept: its table was busy", extra={"partition": partition.name})
        return "table busy (lock not available)"
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE {}").format(ident))
    log.info("partition dropped", extra={"partition": partition.name, "rows_kept": copied})
    return None


class _Stays(Exception):
    """A partition that must not be dropped: rolls the detach back."""
