"""`ledger_retention`: the ledger's own upkeep. Partitions made ahead of need, old runs and log lines removed.

The rules are the config's `retention:` section and each job entry's `retention:` override
(sp_scheduler/config_retention.py); the work is `sp_scheduler.store.retention.apply_retention`, on a
connection of its own in a thread (the store is synchronous, and a pass may take a while).
"""

from __future__ import annotations

import asyncio

from sp_scheduler import Job, JobContext, JobResult, Param
from sp_scheduler.config import SchedulerConfig, load_config
from sp_scheduler.store.connection import connect
from sp_scheduler.store.retention import JobRules, Report, Rules, apply_retention


def rules_from_config(config: SchedulerConfig) -> Rules:
    """The scheduler-wide rules, and the resolved rules of each job entry that overrides them."""
    base = config.retention
    jobs = {
        job.name: JobRules(
            runs=job.retention.runs or base.runs,
            logs=job.retention.logs or base.logs,
            min_runs=base.min_runs_per_job if job.retention.min_runs is None else job.retention.min_runs,
        )
        for job in config.jobs
        if job.retention.runs is not None or job.retention.logs is not None or job.retention.min_runs is not None
    }
    return Rules(runs=base.runs, logs=base.logs, min_runs=base.min_runs_per_job, jobs=jobs)


class LedgerRetention(Job):
    name = "ledger_retention"
    description = "Creates the ledger's partitions ahead of need; drops or deletes runs and log lines past retention"
    schedule = "0 30 4 * * *"
    parameters = (
        Param("batch_size", "int", 5000, "most rows one delete batch removes", min=1, max=100_000),
        Param("pause_ms", "int", 250, "rest after each partition dropped and each full batch", min=0, max=60_000),
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        settings = ctx.settings
        if settings is None:
            return JobResult.failure("ledger_retention needs the worker's settings (database URL, config)")
        config = load_config(settings.config_path, settings.profile_path)
        rules = rules_from_config(config)
        batch: int = ctx.param("batch_size")
        pause: int = ctx.param("pause_ms")
        url = settings.require_database_url()

        def run() -> Report:
            with connect(url, autocommit=True) as conn:
                return apply_retention(conn, rules, batch=batch, pause=pause / 1000)

        report = await asyncio.to_thread(run)
        ctx.logger.info(
            "retention pass",
            extra={
                "dropped": report.dropped,
                "kept": report.kept,
                "partitions_created": report.created,
                "runs_deleted": report.runs_deleted,
                "logs_deleted": report.logs_deleted,
            },
        )
        removed = report.runs_deleted + report.logs_deleted
        return JobResult.success().with_stats(removed, 0).with_message(report.summary())
