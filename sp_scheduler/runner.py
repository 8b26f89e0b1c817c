"""Run one job once: claim it in the ledger, build its context, execute it, record the outcome.

Used by the Celery task on workers and by `jobs run --local`, so both leave the same history.
A job that raises, returns failure or times out is recorded and never affects other runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from sp_scheduler import store
from sp_scheduler.catalog import Catalog, CatalogWatch, JobDefinition
from sp_scheduler.errors import DatabaseUnavailable, UnknownJob
from sp_scheduler.jobs import JobContext, JobResult, Trigger
from sp_scheduler.leases import LeaseKeeper
from sp_scheduler.runlog import RunLogBuffer, run_logger
from sp_scheduler.settings import Settings

if TYPE_CHECKING:
    from sp_scheduler.metrics import RunMetrics

log = logging.getLogger(__name__)
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What the one Celery task carries: (job name, trigger, scheduled_for, run id, params)."""

    job_name: str
    trigger: Trigger
    scheduled_for: datetime | None = None
    run_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def task_args(self) -> list[Any]:
        """The task's positional arguments, JSON-ready: how every sender puts this request on the wire."""
        return [
            self.job_name,
            self.trigger,
            self.scheduled_for.isoformat() if self.scheduled_for else None,
            self.run_id,
            dict(self.params),
        ]

    def resolved_run_id(self) -> str:
        """Scheduled slots get the deterministic slot id, so every deliverer agrees on it."""
        if self.run_id:
            return self.run_id
        if self.scheduled_for is None:
            raise ValueError("a run needs a run id or a scheduled_for slot")
        return store.slot_run_id(self.job_name, self.scheduled_for)


class WorkerRuntime:
    """Per-process resources: ledger pool, event loop, job database pool. Re-created after fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = CatalogWatch(settings)
        self.hostname = f"{socket.gethostname()}:{os.getpid()}"
        self._pid = os.getpid()
        self._ledger: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._job_pool: AsyncConnectionPool[Any] | None = None
        self._leases: LeaseKeeper | None = None
        self._metrics: RunMetrics | None = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # inherited handles belong to the parent: start afresh
            self._pid = os.getpid()
            self.hostname = f"{socket.gethostname()}:{self._pid}"
            self._ledger = None
            self._loop = None
            self._job_pool = None
            self._leases = None  # threads do not survive fork
            self._metrics = None

    def ledger(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The small sync pool for ledger writes (usable from the lease thread while a job runs)."""
        self._check_fork()
        if self._ledger is None:
            self._ledger = store.open_pool(
                self.settings.require_database_url(),
                min_size=1,
                max_size=2,
                timeout=5.0,
                autocommit=True,
                check_on_checkout=False,
                synchronous_commit=self.settings.ledger_synchronous_commit,
            )
        return self._ledger

    def ledger_call(self, call: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """Run one ledger call; retry once on a broken connection (Postgres restarted), then give up.

        The ledger pool skips the per-checkout health check to save a round trip, so the first use of
        a connection the server dropped fails; the retry gets a fresh one. A second failure means
        Postgres is really down: `DatabaseUnavailable`.
        """
        for attempt in (1, 2):
            try:
                with self.ledger().connection() as conn:
                    return call(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2:
                    raise DatabaseUnavailable(f"ledger unavailable: {exc}") from exc
                log.warning("ledger connection failed; retrying once", extra={"error": str(exc)})
        raise AssertionError("unreachable")

    def leases(self) -> LeaseKeeper:
        """This process's lease keeper (one thread, started on first use)."""
        self._check_fork()
        if self._leases is None:
            self._leases = LeaseKeeper(self.ledger().connection, self.settings.lease_seconds)
        return self._leases

    def metrics(self) -> RunMetrics | None:
        """Run metrics for this process, when SP_METRICS_PORT is set (created after fork)."""
        if not self.settings.metrics_port:
            return None
        self._check_fork()
        if self._metrics is None:
            from sp_scheduler.metrics import RunMetrics

            self._metrics = RunMetrics()
        return self._metrics

    def loop(self) -> asyncio.AbstractEventLoop:
        self._check_fork()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def job_pool(self) -> AsyncConnectionPool[Any]:
        """One async pool per process for the jobs' own queries, opened on this process's loop."""
        loop = self.loop()
        if self._job_pool is None:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.settings.require_database_url(),
                min_size=1,
                max_size=self.settings.db_pool_size,
                open=False,
                name="sp-jobs",
            )
            loop.run_until_complete(pool.open(wait=True, timeout=10))
            self._job_pool = pool
        return self._job_pool

    def close(self) -> None:
        """Close what this process opened (worker shutdown)."""
        if os.getpid() != self._pid:
            return
        if self._leases is not None:
            self._leases.stop()
        if self._job_pool is not None and self._loop is not None:
            self._loop.run_until_complete(self._job_pool.close())
        if self._loop is not None:
            self._loop.close()
        if self._ledger is not None:
            self._ledger.close()
        self._job_pool = self._loop = self._ledger = self._leases = None


async def _execute(definition: JobDefinition, ctx: JobContext) -> JobResult:
    if definition.timeout is None:
        return await definition.job.execute(ctx)
    return await asyncio.wait_for(definition.job.execute(ctx), definition.timeout)


def _outcome(definition: JobDefinition, ctx: JobContext, runtime: WorkerRuntime) -> dict[str, Any]:
    """Run the job and turn whatever happened into the ledger's outcome fields."""
    started = time.monotonic()
    logger = ctx.logger
    no_items = {"items_processed": 0, "items_failed": 0}
    try:
        result = runtime.loop().run_until_complete(_execute(definition, ctx))
    except TimeoutError:
        message = f"exceeded its timeout of {definition.timeout:g} s and was cancelled"
        logger.error("job timed out", extra={"timeout": definition.timeout})
        return {"status": "timeout", "message": message, "duration_ms": _ms(started), **no_items}
    except Exception as exc:  # an unrecoverable job error: recorded as failed, never propagated
        trace = traceback.format_exc()
        logger.error("job raised", extra={"error": repr(exc), "traceback": trace})
        return {
            "status": "failed",
            "message": f"{type(exc).__name__}: {exc}",
            "error": repr(exc),
            "traceback": trace,
            "duration_ms": _ms(started),
            **no_items,
        }
    if not isinstance(result, JobResult):
        message = f"execute() returned {type(result).__name__}, not a JobResult"
        logger.error("job returned no JobResult", extra={"returned": type(result).__name__})
        return {"status": "failed", "message": message, "duration_ms": _ms(started), **no_items}
    duration = result.duration_ms if result.duration_ms is not None else _ms(started)
    fields = {
        "status": "succeeded" if result.ok else "failed",
        "message": result.message,
        "items_processed": result.items_processed,
        "items_failed": result.items_failed,
        "duration_ms": duration,
    }
    log_fields = {"status": fields["status"], "duration_ms": duration, "items_processed": result.items_processed}
    if result.ok:
        logger.info("job succeeded", extra=log_fields)
    else:
        logger.error("job failed", extra={**log_fields, "error": result.message})
    return fields


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def execute_run(runtime: WorkerRuntime, request: RunRequest) -> store.RunRecord | None:
    """Claim, run and record one run; returns the final record, or None for a duplicate delivery."""
    catalog = runtime.config.catalog()
    run_id = request.resolved_run_id()
    definition = catalog.find(request.job_name)
    if definition is None:
        runtime.ledger_call(lambda conn: _record_unknown(conn, request, run_id, catalog, runtime.hostname))
        return None
    scheduled = request.trigger == "schedule"
    # Manual runs were checked by the CLI (--force may override); slots check YAML + override here.
    enabled = not scheduled or (catalog.scheduler_enabled and definition.yaml_enabled)
    params = {**definition.params, **request.params}
    claim = runtime.ledger_call(
        lambda conn: store.claim_run(
            conn,
            run_id=run_id,
            job_name=definition.name,
            trigger=request.trigger,
            scheduled_for=request.scheduled_for,
            params=params,
            worker=runtime.hostname,
            lease_seconds=runtime.settings.lease_seconds,
            overlap=definition.overlap,
            enabled=enabled,
            use_override=scheduled and catalog.scheduler_enabled,
        )
    )
    if claim.outcome == "duplicate":
        log.info("duplicate delivery ignored", extra={"job": definition.name, "run_id": run_id})
        return None
    metrics = runtime.metrics()
    if claim.outcome == "skipped":
        log.info("run skipped", extra={"job": definition.name, "run_id": run_id, "reason": claim.reason})
        if metrics is not None and claim.record is not None:
            metrics.finished(claim.record, was_running=False)
        return claim.record
    if metrics is not None and claim.record is not None:
        metrics.started(claim.record)
    buffer = RunLogBuffer(definition.name, run_id)
    logger = run_logger(
        definition.name,
        buffer,
        trigger=request.trigger,
        scheduled_for=request.scheduled_for.isoformat() if request.scheduled_for else None,
    )
    ctx = JobContext(
        job_name=definition.name,
        run_id=run_id,
        trigger=request.trigger,
        logger=logger,
        scheduled_for=request.scheduled_for,
        parameters=params,
        services_dir=Path(runtime.settings.services_dir),
        output_dir=Path(runtime.settings.output_dir),
        settings=runtime.settings,
        pool=runtime.job_pool(),
    )
    logger.info("job started")
    leases = runtime.leases()
    leases.track(run_id, buffer)
    try:
        fields = _outcome(definition, ctx, runtime)
    finally:
        leases.untrack(run_id)
    logs = buffer.drain()
    record = runtime.ledger_call(lambda conn: store.finish_run(conn, run_id, **fields, logs=logs))
    if metrics is not None:
        metrics.finished(record)
    return record


def _record_unknown(
    conn: psycopg.Connection[Any], request: RunRequest, run_id: str, catalog: Catalog, worker: str
) -> None:
    """A message for a job this worker does not know (deploy skew, removed job): say so, keep the row honest."""
    error = UnknownJob(request.job_name, catalog.names())
    log.error("unknown job in task message", extra={"job": request.job_name, "run_id": run_id})
    claim = store.claim_run(
        conn,
        run_id=run_id,
        job_name=request.job_name,
        trigger=request.trigger,
        scheduled_for=request.scheduled_for,
        params=dict(request.params),
        worker=worker,
        lease_seconds=1,
        overlap="allow",
        enabled=True,
    )
    if claim.outcome == "run":
        store.finish_run(
            conn,
            run_id,
            status="failed",
            message=f"worker cannot run it: {error}",
            items_processed=0,
            items_failed=0,
            duration_ms=0,
        )
