"""Maintenance rules applied in bounded batches, each batch its own short transaction.

One DELETE over a million rows holds every row lock it takes until it commits and queues the
application behind it. Here a rule is walked in keyset order, a batch at a time: lock the next
candidates (SKIP LOCKED: rows the application is using are left for the next run), act on them with
the rule checked again under the lock, commit. No lock outlives its batch, and a batch that would wait
longer than `lock_timeout_ms` for a lock gives up instead of blocking others.

Batches adapt to what a row costs (a user cascades to dozens of rows, a log line to none): they start
small, double while they commit well under `batch_ms`, halve when they take longer, and never exceed
`batch_size` rows. So lock hold times stay near `batch_ms` whatever the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors, sql

from sp_scheduler import JobContext, JobResult, Param

DEFAULT_BATCH_SIZE = 5000
DEFAULT_LOCK_TIMEOUT_MS = 1000
DEFAULT_BATCH_MS = 200
FIRST_BATCH = 100
MAX_BATCH_SIZE = 100_000

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


# The parameters every maintenance job shares (see BatchOptions); each job lists them after its own.
BATCH_PARAMS: tuple[Param, ...] = (
    Param("batch_size", "int", DEFAULT_BATCH_SIZE, "most rows one batch touches", min=1, max=MAX_BATCH_SIZE),
    Param("dry_run", "bool", False, "count what would change, change nothing"),
    Param("lock_timeout_ms", "int", DEFAULT_LOCK_TIMEOUT_MS, "a batch waits this long for a lock", min=1, max=600_000),
    Param("batch_ms", "int", DEFAULT_BATCH_MS, "target duration of one batch", min=1, max=60_000),
)


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """The parameters every maintenance job shares."""

    batch_size: int = DEFAULT_BATCH_SIZE
    dry_run: bool = False
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
    batch_ms: int = DEFAULT_BATCH_MS

    @classmethod
    def from_context(cls, ctx: JobContext) -> BatchOptions:
        """The checked values of BATCH_PARAMS (the worker checked them before the run started)."""
        return cls(
            batch_size=ctx.param("batch_size"),
            dry_run=ctx.param("dry_run"),
            lock_timeout_ms=ctx.param("lock_timeout_ms"),
            batch_ms=ctx.param("batch_ms"),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """Which rows of `table` a job acts on (`where`, over alias `t`, named parameters) and what it does.

    `update` is an UPDATE SET clause; without one the rows are deleted. Rows are walked by
    (`order_by`, id), which an index must cover; the walk never revisits a row, so rows the rule
    skips under a lock or re-check cost nothing in later batches.
    """

    label: str
    table: str
    where: str
    order_by: str = "created_at"
    id_type: str = "uuid"
    update: str | None = None
    verb: str = "delete"
    past: str = "deleted"

    def count_query(self) -> sql.Composed:
        return sql.SQL("SELECT count(*) FROM {table} AS t WHERE ({where})").format(
            table=sql.Identifier(self.table), where=sql.SQL(self.where)
        )

    def pick_query(self, resume: bool) -> sql.Composed:
        order = sql.Identifier("t", self.order_by)
        after: sql.Composable = sql.SQL("")
        if resume:
            after = sql.SQL(" AND ({order}, t.id) > (%(after_key)s, %(after_id)s::{id_type})").format(
                order=order, id_type=sql.SQL(self.id_type)
            )
        return sql.SQL(
            "SELECT {order}, t.id FROM {table} AS t WHERE ({where}){after}"
            " ORDER BY {order}, t.id LIMIT %(batch_limit)s FOR UPDATE OF t SKIP LOCKED"
        ).format(order=order, table=sql.Identifier(self.table), where=sql.SQL(self.where), after=after)

    def apply_query(self) -> sql.Composed:
        ids = sql.SQL("t.id = ANY(%(batch_ids)s::{id_type}[])").format(id_type=sql.SQL(self.id_type))
        if self.update is None:
            template = "DELETE FROM {table} AS t WHERE {ids} AND ({where})"
        else:
            template = "UPDATE {table} AS t SET {update} WHERE {ids} AND ({where})"
        return sql.SQL(template).format(
            table=sql.Identifier(self.table), ids=ids, where=sql.SQL(self.where), update=sql.SQL(self.update or "")
        )


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What one rule did (or, in a dry run, would do)."""

    rule: Rule
    rows: int
    detail: str = ""
    dry_run: bool = False
    deferred: int = 0  # rows of batches rolled back because a lock was not granted in time
    batches: int = 0
    longest_batch_ms: float = 0.0
    interrupted: str | None = None

    def describe(self) -> str:
        verb = f"would {self.rule.verb}" if self.dry_run else self.rule.past
        text = f"{verb} {self.rows} {self.rule.label}"
        if self.detail:
            text += f" {self.detail}"
        if self.deferred:
            text += f" ({self.deferred} locked, left for the next run)"
        if self.interrupted:
            text += f" (stopped: {self.interrupted})"
        return text


async def database_now(conn: psycopg.AsyncConnection[Any]) -> datetime:
    """The database's clock: every cutoff is computed once from it, so batches and dry runs agree."""
    async with conn.transaction():
        cur = await conn.execute("SELECT now()")
        row = await cur.fetchone()
    if row is None:
        raise RuntimeError("SELECT now() returned no row")
    value: datetime = row[0]
    return value


async def apply_rule(
    conn: psycopg.AsyncConnection[Any],
    rule: Rule,
    params: Mapping[str, Any],
    options: BatchOptions,
    logger: Logger,
    detail: str = "",
) -> RuleOutcome:
    """Apply `rule` in batches (or count its rows in a dry run); logs one summary line."""
    if options.dry_run:
        async with conn.transaction():
            cur = await conn.execute(rule.count_query(), params)
            row = await cur.fetchone()
        outcome = RuleOutcome(rule, int(row[0]) if row else 0, detail, dry_run=True)
    else:
        outcome = await _walk(conn, rule, params, options, logger, detail)
    logger.info(
        "maintenance rule applied",
        extra={
            "rule": rule.label,
            "table": rule.table,
            "rows": outcome.rows,
            "dry_run": outcome.dry_run,
            "deferred": outcome.deferred,
            "batches": outcome.batches,
            "longest_batch_ms": round(outcome.longest_batch_ms, 1),
            "interrupted": outcome.interrupted,
        },
    )
    return outcome


async def _walk(
    conn: psycopg.AsyncConnection[Any],
    rule: Rule,
    params: Mapping[str, Any],
    options: BatchOptions,
    logger: Logger,
    detail: str,
) -> RuleOutcome:
    total = deferred = batches = 0
    longest = 0.0
    after: tuple[Any, ...] | None = None
    interrupted: str | None = None
    limit = min(FIRST_BATCH, options.batch_size)
    while True:
        rows: list[tuple[Any, ...]] = []
        affected = 0
        began = time.monotonic()
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{options.lock_timeout_ms}ms",))
                keyset = {"after_key": after[0], "after_id": after[1]} if after else {}
                cur = await conn.execute(rule.pick_query(after is not None), {**params, **keyset, "batch_limit": limit})
                rows = await cur.fetchall()
                if rows:
                    cur = await conn.execute(rule.apply_query(), {**params, "batch_ids": [row[1] for row in rows]})
                    affected = cur.rowcount
        except errors.LockNotAvailable:
            if not rows:  # the table itself is locked (a migration, say): try again next run
                interrupted = f"{rule.table} was locked for more than {options.lock_timeout_ms} ms"
                logger.warning("maintenance rule stopped: table locked", extra={"rule": rule.label})
                break
            deferred += len(rows)
            logger.warning(
                "maintenance batch deferred: a row was locked", extra={"rule": rule.label, "rows": len(rows)}
            )
        elapsed = (time.monotonic() - began) * 1000
        if not rows:
            break
        batches += 1
        total += affected
        longest = max(longest, elapsed)
        logger.debug(
            "maintenance batch committed", extra={"rule": rule.label, "rows": affected, "ms": round(elapsed, 1)}
        )
        after = rows[-1]
        if len(rows) < limit:
            break
        if elapsed > options.batch_ms:
            limit = max(1, limit // 2)
        elif elapsed < options.batch_ms / 4:
            limit = min(options.batch_size, limit * 2)
    return RuleOutcome(rule, total, detail, False, deferred, batches, longest, interrupted)


def summarize(outcomes: Sequence[RuleOutcome], *, extra: Sequence[str] = ()) -> JobResult:
    """One JobResult for a job's rules: processed = rows acted on, failed = rows left locked."""
    dry_run = any(outcome.dry_run for outcome in outcomes)
    parts = [outcome.describe() for outcome in outcomes] + list(extra)
    message = ("dry run: " if dry_run else "") + "; ".join(parts)
    processed = sum(outcome.rows for outcome in outcomes)
    failed = sum(outcome.deferred for outcome in outcomes)
    base = JobResult.failure(message) if any(o.interrupted for o in outcomes) else JobResult.success()
    return base.with_stats(processed, failed).with_message(message)


@dataclass(frozen=True, slots=True)
class Step:
    """One rule of a cleanup run, with its query parameters and what its summary says about them."""

    rule: Rule
    params: Mapping[str, Any]
    detail: str = ""


async def run_rules(ctx: JobContext, plan: Callable[[datetime], Sequence[Step]]) -> JobResult:
    """The body the cleanup jobs share: the batch options from the run's parameters, the cutoffs from
    the database's clock (`plan(now)`), each step applied in order, one summary for the run."""
    options = BatchOptions.from_context(ctx)
    async with ctx.db_pool.connection() as conn:
        steps = plan(await database_now(conn))
        outcomes = [await apply_rule(conn, s.rule, s.params, options, ctx.logger, s.detail) for s in steps]
    return summarize(outcomes)
