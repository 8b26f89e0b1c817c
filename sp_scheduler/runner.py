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
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from sp_scheduler import store
from sp_scheduler.catalog import Catalog, CatalogWatch, JobDefinition, effective_enabled
from sp_scheduler.errors import DatabaseUnavailable, UnknownJob
from sp_scheduler.jobs import JobContext, JobResult
from sp_scheduler.keeper import RunKeeper
from sp_scheduler.messages import RunRequest
from sp_scheduler.params import ParamError, check_params, resolve_params
from sp_scheduler.runlog import RunLogBuffer, run_logger
from sp_scheduler.settings import Settings
from sp_scheduler.slot_checks import SlotVerdict, check_slot, worker_grace
from sp_scheduler.store import RunOutcome

if TYPE_CHECKING:
    from sp_scheduler.metrics import RunMetrics

log = logging.getLogger(__name__)
_R = TypeVar("_R")
# At shutdown, how long a process keeps trying to record outcomes Postgres has not taken yet.
OUTCOME_FLUSH_SECONDS = 10.0


class WorkerRuntime:
    """Per-process resources: ledger pool, event loop, job database pool. Re-created after fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = CatalogWatch(settings)
        self.services_dir = Path(settings.services_dir)
        self.output_dir = Path(settings.output_dir)
        self.hostname = f"{socket.gethostname()}:{os.getpid()}"
        self._pid = os.getpid()
        self._ledger: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._job_pool: AsyncConnectionPool[Any] | None = None
        self._keeper: RunKeeper | None = None
        self._metrics: RunMetrics | None = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # inherited handles belong to the parent: start afresh
            self._pid = os.getpid()
            self.hostname = f"{socket.gethostname()}:{self._pid}"
            self._ledger = None
            self._loop = None
            self._job_pool = None
            self._keeper = None  # threads do not survive fork
            self._metrics = None

    def ledger(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The small sync pool for ledger writes (usable from the lease thread while a job runs)."""
        self._check_fork()
        if self._ledger is None:
            self._ledger = store.open_pool(
                self.settings.require_database_url(),
                min_size=2,  # the task's claims and the run keeper's writes
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

    def keeper(self) -> RunKeeper:
        """This process's run keeper: leases, log lines and outcomes (one thread, started on first use)."""
        self._check_fork()
        if self._keeper is None:
            metrics = self.metrics()
            self._keeper = RunKeeper(
                self.ledger().connection,
                self.settings.lease_seconds,
                on_recorded=metrics.finished if metrics is not None else None,
                fallback=self._fresh_ledger_connection,
            )
        return self._keeper

    def _fresh_ledger_connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """One connection outside the pool, closed after use: the keeper's way round a pool in backoff."""
        return store.connect(self.settings.require_database_url(), autocommit=True)

    def metrics(self) -> RunMetrics | None:
        """Run metrics for this process, when SP_METRICS_PORT is set (created after fork)."""
        if not self.settings.metrics_port:
            return None
        self._check_fork()
        if self._metrics is None:
            # prometheus_client only with metrics on, after fork.
            from sp_scheduler.metrics import RunMetrics  # noqa: PLC0415

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
                store.conninfo_with_defaults(self.settings.require_database_url()),
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
        if self._keeper is not None:
            self._keeper.stop(timeout=OUTCOME_FLUSH_SECONDS)
        if self._job_pool is not None and self._loop is not None:
            self._loop.run_until_complete(self._job_pool.close())
        if self._loop is not None:
            self._loop.close()
        if self._ledger is not None:
            self._ledger.close()
        self._job_pool = self._loop = self._ledger = self._keeper = None


async def _execute(definition: JobDefinition, ctx: JobContext) -> JobResult:
    if definition.timeout is None:
        return await definition.job.execute(ctx)
    return await asyncio.wait_for(definition.job.execute(ctx), definition.timeout)


def _outcome(definition: JobDefinition, ctx: JobContext, runtime: WorkerRuntime, claimed: float) -> RunOutcome:
    """Run the job and turn whatever happened into the ledger's outcome; `claimed` is when the claim returned."""
    started = time.monotonic()
    logger = ctx.logger
    run_id = ctx.run_id
    try:
        result = runtime.loop().run_until_complete(_execute(definition, ctx))
    except TimeoutError:
        message = f"exceeded its timeout of {definition.timeout:g} s and was cancelled"
        logger.error("job timed out", extra={"timeout": definition.timeout})
        return RunOutcome(run_id, "timeout", message, duration_ms=_ms(started), elapsed_seconds=_since(claimed))
    except SoftTimeLimitExceeded:  # the job blocked its event loop past the timeout (worker.py's soft limit)
        message = (
            f"exceeded its timeout of {definition.timeout:g} s while blocking its event loop;"
            " interrupted by the worker's soft time limit"
        )
        logger.error("job timed out", extra={"timeout": definition.timeout, "blocking": True})
        return RunOutcome(run_id, "timeout", message, duration_ms=_ms(started), elapsed_seconds=_since(claimed))
    except Exception as exc:  # an unrecoverable job error: recorded as failed, never propagated
        trace = traceback.format_exc()
        logger.error("job raised", extra={"error": repr(exc), "traceback": trace})
        return RunOutcome(
            run_id,
            "failed",
            f"{type(exc).__name__}: {exc}",
            error=repr(exc),
            traceback=trace,
            duration_ms=_ms(started),
            elapsed_seconds=_since(claimed),
        )
    if not isinstance(result, JobResult):
        message = f"execute() returned {type(result).__name__}, not a JobResult"
        logger.error("job returned no JobResult", extra={"returned": type(result).__name__})
        return RunOutcome(run_id, "failed", message, duration_ms=_ms(started), elapsed_seconds=_since(claimed))
    duration = result.duration_ms if result.duration_ms is not None else _ms(started)
    status: store.FinishStatus = "succeeded" if result.ok else "failed"
    log_fields = {"status": status, "duration_ms": duration, "items_processed": result.items_processed}
    if result.ok:
        logger.info("job succeeded", extra=log_fields)
    else:
        logger.error("job failed", extra={**log_fields, "error": result.message})
    return RunOutcome(
        run_id,
        status,
        result.message,
        items_processed=result.items_processed,
        items_failed=result.items_failed,
        duration_ms=duration,
        elapsed_seconds=_since(claimed),
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _since(started: float) -> float:
    return time.monotonic() - started


def execute_run(runtime: WorkerRuntime, request: RunRequest) -> Future[store.RunRecord] | None:
    """Claim and run one run, and hand its outcome to the run keeper; None for a duplicate delivery.

    Returns at once when the job is done: the future resolves to the final row once the keeper has
    committed it (`jobs run --local` waits for it; the worker task does not, see keeper.py).
    """
    catalog = runtime.config.catalog()
    run_id = request.resolved_run_id()
    definition = catalog.find(request.job_name)
    if definition is None:
        runtime.ledger_call(lambda conn: _record_unknown(conn, request, run_id, catalog, runtime.hostname))
        return None
    slot = request.scheduled_for
    verdict = None
    if slot is not None and scheduled(request):
        grace = worker_grace(definition.misfire_grace, slot, definition.cron)
        verdict = check_slot(slot, grace, datetime.now(UTC))
    if slot is not None and verdict is not None:  # a slot from the future, or past its misfire grace
        runtime.ledger_call(lambda conn: _record_refused_slot(conn, definition.name, slot, verdict))
        return None
    try:  # a message with bad params (older CLI, hand-made message) is this run's failure, never a crash
        params = check_params(
            definition.name,
            definition.job.parameters,
            {**definition.params, **request.params},
            runtime.settings.param_roots(),
        )
    except ParamError as exc:
        return _refuse(runtime, request, run_id, str(exc))
    claim = _claim(runtime, request, definition, catalog, run_id, params)
    claimed = time.monotonic()
    if claim.outcome == "duplicate" or claim.record is None:
        return None
    metrics = runtime.metrics()
    if claim.outcome == "skipped":
        if metrics is not None:
            metrics.finished(claim.record, was_running=False)
        skipped: Future[store.RunRecord] = Future()
        skipped.set_result(claim.record)
        return skipped
    if metrics is not None:
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
        parameters=resolve_params(definition.job.parameters, params),
        services_dir=runtime.services_dir,
        output_dir=runtime.output_dir,
        settings=runtime.settings,
        pool=runtime.job_pool(),
    )
    logger.info("job started")
    keeper = runtime.keeper()
    keeper.track(run_id, buffer)
    try:
        outcome = _outcome(definition, ctx, runtime, claimed)
    except BaseException:  # the process is being torn down: the lease runs out and the run is marked lost
        keeper.untrack(run_id)
        raise
    return keeper.finish(outcome)


def _claim(
    runtime: WorkerRuntime,
    request: RunRequest,
    definition: JobDefinition,
    catalog: Catalog,
    run_id: str,
    params: dict[str, Any],
) -> store.Claim:
    """Claim the run in one statement that also records this process's waiting outcomes (keeper.py).

    A broken connection is retried once (`ledger_call`), and the retry recognises a claim the first
    attempt committed. A statement Postgres refuses is tried once more without the outcomes, so an
    earlier run's bad outcome never costs this run its claim.
    """
    scheduled = request.trigger == "schedule"
    # Manual runs were checked by the CLI (--force may override); slots check YAML + override here:
    # the config's part of effective_enabled now, the override inside the claim statement.
    config_state = effective_enabled(catalog, definition)
    enabled = not scheduled or config_state.value
    keeper = runtime.keeper()
    taken = keeper.take_outcomes()
    attempts = 0

    def claim_once(conn: psycopg.Connection[Any]) -> store.Claim:
        nonlocal attempts
        attempts += 1
        return store.claim_run(
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
            use_override=scheduled and config_state.scheduler,
            finishing=[pending.outcome for pending in taken],
            logs=[line for pending in taken for line in pending.logs],
            # The first attempt may have committed before its connection broke: then the running row
            # it left is this claim, unless this process has an earlier run of the same id in hand.
            retrying=attempts > 1 and not keeper.tracks(run_id),
        )

    try:
        try:
            claim = runtime.ledger_call(claim_once)
        except psycopg.DatabaseError as exc:  # refused, not the connection (that is DatabaseUnavailable)
            if not taken:
                raise
            log.warning(
                "claim could not carry earlier outcomes; claiming alone",
                extra={"job": definition.name, "run_id": run_id, "outcomes": len(taken), "error": str(exc)},
            )
            keeper.release(taken)
            taken, attempts = [], 0
            claim = runtime.ledger_call(claim_once)
    except BaseException:
        keeper.release(taken)
        raise
    keeper.recorded(taken, claim.finished)
    return claim


def _refuse(runtime: WorkerRuntime, request: RunRequest, run_id: str, reason: str) -> Future[store.RunRecord] | None:
    """Record a run the worker will not start (its params are bad) as failed, with the one-line reason."""
    log.error("run refused: bad parameters", extra={"job": request.job_name, "run_id": run_id, "error": reason})

    def record(conn: psycopg.Connection[Any]) -> store.RunRecord | None:
        return _claim_and_fail(conn, request, run_id, runtime.hostname, f"not run: {reason}")

    recorded = runtime.ledger_call(record)
    if recorded is None:
        return None
    done: Future[store.RunRecord] = Future()
    done.set_result(recorded)
    return done


def _claim_and_fail(
    conn: psycopg.Connection[Any], request: RunRequest, run_id: str, worker: str, message: str
) -> store.RunRecord | None:
    """Claim the run only to finish it as failed with `message`; None when it was already claimed."""
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
    if claim.outcome != "run":
        return None
    return store.finish_run(
        conn, run_id, status="failed", message=message, items_processed=0, items_failed=0, duration_ms=0
    )


def scheduled(request: RunRequest) -> bool:
    """Whether the request is a scheduled slot (not a manual or startup run)."""
    return request.trigger == "schedule"


def _record_refused_slot(conn: psycopg.Connection[Any], job_name: str, slot: datetime, verdict: SlotVerdict) -> None:
    """A slot that will not run gets its row now (a slot that already has one keeps it)."""
    new = store.record_slot(conn, job_name=job_name, scheduled_for=slot, status=verdict.status, message=verdict.message)
    extra = {"job": job_name, "scheduled_for": slot.isoformat(), "status": verdict.status, "reason": verdict.message}
    if new:
        log.warning("slot not run", extra=extra)
    else:
        log.info("slot not run; it already has a row", extra=extra)


def _record_unknown(
    conn: psycopg.Connection[Any], request: RunRequest, run_id: str, catalog: Catalog, worker: str
) -> None:
    """A message for a job this worker does not know (deploy skew, removed job): say so, keep the row honest."""
    error = UnknownJob(request.job_name, catalog.names())
    log.error("unknown job in task message", extra={"job": request.job_name, "run_id": run_id})
    _claim_and_fail(conn, request, run_id, worker, f"worker cannot run it: {error}")
