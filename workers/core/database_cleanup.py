"""`database_cleanup`: old log lines and expired OAuth rows go, touched tables are vacuumed, bloat is reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sp_scheduler import Job, JobContext, JobResult, Param
from sp_scheduler.store.application import APPLICATION_TABLES
from workers.core.batching import (
    BATCH_PARAMS,
    BatchOptions,
    Logger,
    Rule,
    apply_rule,
    database_now,
    summarize,
)
from workers.core.vacuum import Bloat, estimate_bloat, vacuum_tables

LOG_LINES = Rule(label="log lines", table="sp_logs", where="t.created_at < %(log_cutoff)s", id_type="bigint")
EXPIRED_CODES = Rule(
    label="expired OAuth codes",
    table="oauth_authorization_codes",
    where="t.expires_at < %(now)s",
    order_by="expires_at",
)
EXPIRED_TOKENS = Rule(
    label="expired OAuth tokens", table="oauth_tokens", where="t.expires_at < %(now)s", order_by="expires_at"
)
# The tables the scheduler and its core jobs look after: the bloat report covers these.
REPORTED_TABLES = ("sp_logs", "sp_job_runs", *APPLICATION_TABLES)
MIN_REPORTED_BLOAT_BYTES = 1024 * 1024  # below a megabyte, bloat is noise whatever its percentage


class DatabaseCleanup(Job):
    name = "database_cleanup"
    description = "General database maintenance: old logs, expired tokens, vacuum and index cleanup"
    schedule = "0 0 4 * * *"
    parameters = (
        Param("days", "int", 30, "delete scheduler log lines older than this", min=1),
        Param("vacuum", "bool", True, "vacuum the tables this run changed"),
        Param("oauth", "bool", True, "also delete expired OAuth codes and tokens (false: log lines only)"),
        Param("bloat_percent", "int", 30, "report tables whose estimated bloat exceeds this", min=1, max=100),
        *BATCH_PARAMS,
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        days: int = ctx.param("days")
        vacuum: bool = ctx.param("vacuum")
        oauth: bool = ctx.param("oauth")  # false: log lines only (`jobs log-cleanup`)
        threshold: int = ctx.param("bloat_percent")
        options = BatchOptions.from_context(ctx)
        async with ctx.db_pool.connection() as conn:
            now = await database_now(conn)
            params = {"log_cutoff": now - timedelta(days=days), "now": now}
            outcomes = [await apply_rule(conn, LOG_LINES, params, options, ctx.logger, f"older than {days} days")]
            for rule in (EXPIRED_CODES, EXPIRED_TOKENS) if oauth else ():
                outcomes.append(await apply_rule(conn, rule, params, options, ctx.logger))
            touched = [outcome.rule.table for outcome in outcomes if outcome.rows]
            notes: list[str] = []
            if not vacuum or not touched:
                notes.append("no vacuum" if touched else "nothing to vacuum")
            elif options.dry_run:
                notes.append(f"would vacuum {', '.join(touched)}")
            else:
                vacuumed = await vacuum_tables(conn, touched, ctx.logger)
                notes.append(f"vacuumed {', '.join(vacuumed) or 'nothing'}")
            report = await estimate_bloat(conn, REPORTED_TABLES)
        notes.append(_report_bloat(report, threshold, ctx.logger))
        return summarize(outcomes, extra=notes)


def _report_bloat(report: Sequence[Bloat], threshold_percent: int, logger: Logger) -> str:
    """Log the whole estimate as one line, warn about each relation over the threshold, summarise those."""
    logger.info("bloat estimate", extra={"relations": [entry.to_dict() for entry in report]})
    bloated = [
        entry
        for entry in report
        if entry.bloat_bytes is not None
        and entry.bloat_bytes >= MIN_REPORTED_BLOAT_BYTES
        and (entry.ratio or 0) * 100 >= threshold_percent
    ]
    for entry in bloated:
        logger.warning("relation is bloated", extra=entry.to_dict())
    if not bloated:
        return f"no table or index over {threshold_percent}% bloat"
    worst = sorted(bloated, key=lambda entry: entry.bloat_bytes or 0, reverse=True)
    listed = ", ".join(f"{e.name} {round((e.ratio or 0) * 100)}% ({_mib(e.bloat_bytes or 0)})" for e in worst[:5])
    more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
    return f"bloat over {threshold_percent}%: {listed}{more}"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
