"""Run one job once: claim it in the ledger, build its context, execute it, record the outcome.

Used by the Celery task on workers and by `jobs run --local`, so both leave the same history.
A job that raises, returns failure or times out is recorded and never affects other runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from sp_scheduler import store
from sp_scheduler.catalog import Catalog, JobDefinition, effective_enabled
from sp_scheduler.errors import UnknownJob, UnknownRun
from sp_scheduler.jobs import JobContext, JobResult
from sp_scheduler.ledger import Ledger, LedgerRefused
from sp_scheduler.messages import RunRequest
from sp_scheduler.params import ParamError, check_params, resolve_params
from sp_scheduler.runlog import RunLogBuffer, run_logger
from sp_scheduler.runtime import OUTCOME_FLUSH_SECONDS, WorkerRuntime
from sp_scheduler.slot_checks import SlotVerdict, check_slot, worker_grace
from sp_scheduler.store import RunOutcome

__all__ = ["OUTCOME_FLUSH_SECONDS", "RunRequest", "WorkerRuntime", "execute_run", "scheduled"]

log = logging.getLogger(__name__)


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
        runtime.with_ledger(lambda ledger: _record_unknown(ledger, request, run_id, catalog, runtime.hostname))
        return None
    slot = request.scheduled_for
    verdict = None
    if slot is not None and scheduled(request):
        grace = worker_grace(definition.misfire_grace, slot, definition.cron)
        verdict = check_slot(slot, grace, datetime.now(UTC))
    elif slot is not None and request.trigger == "backfill":  # late on purpose: only the future is refused
        verdict = check_slot(slot, None, datetime.now(UTC))
        if verdict is not None:
            return _refuse(runtime, request, run_id, verdict.message, "run refused: slot in the future")
    if slot is not None and verdict is not None:  # a slot from the future, or past its misfire grace
        runtime.with_ledger(lambda ledger: _record_refused_slot(ledger, definition.name, slot, verdict))
        return None
    try:  # a message with bad params (older CLI, hand-made message) is this run's failure, never a crash
        params = check_params(
            definition.name,
            definition.job.parameters,
            {**definition.params, **request.params},
            runtime.settings.param_roots(),
        )
    except ParamError as exc:
        return _refuse(runtime, request, run_id, f"not run: {exc}", "run refused: bad parameters")
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

    A broken connection is retried once (`with_ledger`), and the retry recognises a claim the first
    attempt committed. A claim the ledger refuses is tried once more without the outcomes, so an
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

    def claim_once(ledger: Ledger) -> store.Claim:
        nonlocal attempts
        attempts += 1
        return ledger.claim(
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
            claim = runtime.with_ledger(claim_once)
        except LedgerRefused as exc:  # refused, not the connection (that is LedgerUnavailable)
            if not taken:
                raise
            log.warning(
                "claim could not carry earlier outcomes; claiming alone",
                extra={"job": definition.name, "run_id": run_id, "outcomes": len(taken), "error": str(exc)},
            )
            keeper.release(taken)
            taken, attempts = [], 0
            claim = runtime.with_ledger(claim_once)
    except BaseException:
        keeper.release(taken)
        raise
    keeper.recorded(taken, claim.finished)
    return claim


def _refuse(
    runtime: WorkerRuntime, request: RunRequest, run_id: str, message: str, event: str
) -> Future[store.RunRecord] | None:
    """Record a run the worker will not start (bad params, a backfill slot in the future) as failed with
    `message`; `event` is the log line saying why."""
    log.error(event, extra={"job": request.job_name, "run_id": run_id, "error": message})

    def record(ledger: Ledger) -> store.RunRecord | None:
        return _claim_and_fail(ledger, request, run_id, runtime.hostname, message)

    recorded = runtime.with_ledger(record)
    if recorded is None:
        return None
    done: Future[store.RunRecord] = Future()
    done.set_result(recorded)
    return done


def _claim_and_fail(
    ledger: Ledger, request: RunRequest, run_id: str, worker: str, message: str
) -> store.RunRecord | None:
    """Claim the run only to finish it as failed with `message`; None when it was already claimed."""
    claim = ledger.claim(
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
    outcome = RunOutcome(run_id, "failed", message, items_processed=0, items_failed=0, duration_ms=0)
    finished = ledger.finish([outcome])
    if not finished:
        raise UnknownRun(f"unknown run {run_id}")
    return finished[0]


def scheduled(request: RunRequest) -> bool:
    """Whether the request is a scheduled slot (not a manual, startup or backfill run)."""
    return request.trigger == "schedule"


def _record_refused_slot(ledger: Ledger, job_name: str, slot: datetime, verdict: SlotVerdict) -> None:
    """A slot that will not run gets its row now (a slot that already has one keeps it)."""
    new = ledger.record_slots(job_name=job_name, slots=[slot], status=verdict.status, message=verdict.message) == 1
    extra = {"job": job_name, "scheduled_for": slot.isoformat(), "status": verdict.status, "reason": verdict.message}
    if new:
        log.warning("slot not run", extra=extra)
    else:
        log.info("slot not run; it already has a row", extra=extra)


def _record_unknown(ledger: Ledger, request: RunRequest, run_id: str, catalog: Catalog, worker: str) -> None:
    """A message for a job this worker does not know (deploy skew, removed job): say so, keep the row honest."""
    error = UnknownJob(request.job_name, catalog.names())
    log.error("unknown job in task message", extra={"job": request.job_name, "run_id": run_id})
    _claim_and_fail(ledger, request, run_id, worker, f"worker cannot run it: {error}")
