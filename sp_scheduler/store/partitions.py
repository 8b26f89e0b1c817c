"""The weekly partitions of `sp_job_runs` and `sp_logs`: listed, created ahead of need, dropped whole.

Both tables are range-partitioned by time (migration 0009): a partition per week, Monday 00:00 UTC to
the next, named `<table>_pYYYYMMDD` after its first day, and a DEFAULT partition for rows outside them.
Weekly (docs/decisions.md, "Retention by partition"): every claim's overlap check and every lookup by
id visits each partition, so their number must stay small (about five for a month), while a dropped
partition overshoots the retention by at most a week.

Locks are what matter on a live ledger. A partition is created standalone and ATTACHed, which takes
SHARE UPDATE EXCLUSIVE on the parent and ACCESS EXCLUSIVE on the DEFAULT partition (whose rows in the
new range move in the same transaction, and which is scanned). A partition is dropped by DETACH
(ACCESS EXCLUSIVE on the parent, held for a millisecond or two: the detach and the check for active
runs, then commit) and then, in a transaction of its own that no claim waits for, the copy of the few
rows still needed and DROP of the detached table. Attach and detach run under a short `lock_timeout`,
so a pass that meets a long transaction gives up on that partition instead of queueing claims behind it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import tuple_row

from sp_scheduler.store.latest import MOVING_ROWS, forget_dropped

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


@dataclass(frozen=True, slots=True)
class Step:
    """One DDL transaction of a pass and how long it took, its lock wait included.

    `attach` and `detach` hold a lock on the partitioned table until their commit, so their time bounds
    how long they held claims up; `drop` concerns only a table already detached.
    """

    action: str  # "attach" | "detach" | "drop"
    partition: str
    seconds: float


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


def ensure_partitions(conn: psycopg.Connection[Any], now: datetime | None = None, *, ahead: int = AHEAD) -> list[Step]:
    """Create the current week's partition and `ahead` more of each table, where missing; one step each.

    Rows the DEFAULT partition holds in a new partition's range move into it in the same transaction.
    A partition whose lock cannot be had at once is left for the next call (logged).
    """
    now = now or database_now(conn)
    created = []
    for table in TABLES:
        have = {p.start for p in partitions(conn, table)}
        for k in range(ahead + 1):
            start = period_start(now) + k * PERIOD
            if start not in have:
                step = _attach(conn, table, start, start + PERIOD, create=True)
                if step is not None:
                    created.append(step)
    return created


def _stored_columns(cur: psycopg.Cursor[tuple[Any, ...]], table: str, alias: str | None = None) -> sql.Composable:
    """The columns a row is copied by: all but generated ones, which Postgres computes again."""
    rows = cur.execute(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (table,),
    ).fetchall()
    return sql.SQL(", ").join(sql.Identifier(*([alias] if alias else []), name) for (name,) in rows)


def _attach(
    conn: psycopg.Connection[Any], table: Table, start: datetime, end: datetime, *, create: bool
) -> Step | None:
    """Attach the partition of [start, end), created here when `create`; None when it could not be."""
    name = partition_name(table, start)
    ident, parent, default = sql.Identifier(name), sql.Identifier(table.name), sql.Identifier(table.default)
    in_range = sql.SQL("{key} >= %(start)s AND {key} < %(end)s").format(key=sql.Identifier(table.key))
    bounds = {"start": start, "end": end}
    began = time.perf_counter()
    try:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            cur.execute(MOVING_ROWS)  # rows leaving DEFAULT for the new partition: no run ends here
            if create:
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
        step = Step("attach", name, time.perf_counter() - began)
        with conn.transaction():  # statistics from the start: the planner never guesses a new partition's size
            conn.execute(sql.SQL("ANALYZE {}").format(ident))
    except (
        errors.LockNotAvailable,
        errors.DuplicateTable,
        errors.InvalidObjectDefinition,
        errors.UniqueViolation,
    ) as exc:  # busy, raced, overlap, a row of the DEFAULT partition already in a table detached
        log.warning("partition not attached", extra={"partition": name, "reason": str(exc).strip()})
        return None
    log.info(
        "partition created" if create else "partition attached again",
        extra={"partition": name, "moved_from_default": moved, "lock_held_ms": round(step.seconds * 1000, 1)},
    )
    return step


@dataclass(frozen=True, slots=True)
class Keep:
    """Rows of a partition that must survive its drop: each job's rows from `since` on."""

    jobs: Sequence[str]
    since: Sequence[datetime]


def kept_rows(partition: str) -> sql.Composed:
    """FROM clause of the rows `Keep` names (two array parameters: jobs, since), aliased `t`: one index
    probe per job. As a plain join the planner hashes the arrays and reads the whole partition (100 ms
    and more of CPU for a week of a busy ledger); OFFSET 0 keeps the subquery a probe per job."""
    return sql.SQL(
        "unnest(%s::text[], %s::timestamptz[]) AS k(job, since) CROSS JOIN LATERAL"
        " (SELECT * FROM {} p WHERE p.job_name = k.job AND p.created_at >= k.since OFFSET 0) t"
    ).format(sql.Identifier(partition))


@dataclass(frozen=True, slots=True)
class Dropped:
    """What `drop_partition` did: `kept` says why the partition stays (None: dropped); the steps it took."""

    kept: str | None
    steps: tuple[Step, ...]


def drop_partition(conn: psycopg.Connection[Any], table: Table, partition: Partition, keep: Keep) -> Dropped:
    """Drop one partition, or say why it stays (an active run, a lock not had).

    The detach commits as soon as the partition is checked for active runs, so it holds the table's
    lock for a millisecond or two. The rows `keep` names are then copied back into the table (they land
    in the DEFAULT partition: no dated partition covers that range any more) in the transaction that
    drops the detached table, which no claim waits for. Between the two commits readers miss those
    rows; a pass that dies there leaves the table detached, and the next one attaches it again
    (`reattach_detached`).
    """
    ident, parent = sql.Identifier(partition.name), sql.Identifier(table.name)
    began = time.perf_counter()
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
    except _Stays as why:
        log.info("partition kept", extra={"partition": partition.name, "reason": str(why)})
        return Dropped(str(why), (Step("detach", partition.name, time.perf_counter() - began),))
    except errors.LockNotAvailable:
        log.warning("partition kept: its table was busy", extra={"partition": partition.name})
        waited = Step("detach", partition.name, time.perf_counter() - began)
        return Dropped("table busy (lock not available)", (waited,))
    detached = Step("detach", partition.name, time.perf_counter() - began)
    began = time.perf_counter()
    copied = 0
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(MOVING_ROWS)  # the kept rows come back with their keys: the same runs, not new ones
        if keep.jobs:
            columns, from_t = _stored_columns(cur, table.name), _stored_columns(cur, table.name, "t")
            copied = cur.execute(
                sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                    parent, columns, from_t, kept_rows(partition.name)
                ),
                (list(keep.jobs), list(keep.since)),
            ).rowcount
        cur.execute(sql.SQL("DROP TABLE {}").format(ident))
        if table is RUNS:
            forget_dropped(cur, partition.start, partition.end)
    dropped = Step("drop", partition.name, time.perf_counter() - began)
    log.info(
        "partition dropped",
        extra={
            "partition": partition.name,
            "rows_kept": copied,
            "lock_held_ms": round(detached.seconds * 1000, 1),
            "copy_and_drop_ms": round(dropped.seconds * 1000, 1),
        },
    )
    return Dropped(None, (detached, dropped))


def reattach_detached(conn: psycopg.Connection[Any]) -> list[Step]:
    """Attach again each partition a pass detached but did not drop (it died in between); one step each.

    Such a table still holds the rows its drop was to keep; attached again, the next drop handles it
    as any other partition.
    """
    steps = []
    for table in TABLES:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT c.relname::text FROM pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition"
                " AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = %s::regclass)"
                " AND c.relname ~ %s",
                (table.name, f"^{table.name}_p[0-9]{{8}}$"),
            ).fetchall()
        for (name,) in rows:
            match = _NAME.search(name)
            assert match is not None
            start = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            step = _attach(conn, table, start, start + PERIOD, create=False)
            if step is not None:
                steps.append(step)
    return steps


class _Stays(Exception):
    """A partition that must not be dropped: rolls the detach back."""
