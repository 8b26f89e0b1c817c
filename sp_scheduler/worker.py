"""The Celery app factory and the one task, `sp_scheduler.run_job`.

Messages are JSON only; results live in Postgres, so there is no result backend. Acks are late and
prefetch is one, so a worker never hoards runs; the ledger's slot constraint makes a redelivered
message harmless.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, bootsteps
from celery.signals import worker_process_shutdown, worker_shutting_down

from sp_scheduler import dead_letters, keys, store
from sp_scheduler.celery_app import configured_app, settings_of
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import DatabaseUnavailable

# The CLI, pool_deaths.py and tests import these from here too; they live with the message now.
from sp_scheduler.messages import HARD_LIMIT_GRACE, SOFT_LIMIT_MARGIN, TASK_NAME, send_run, time_limits
from sp_scheduler.reaping import ReaperGate
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.runner import WorkerRuntime, execute_run
from sp_scheduler.settings import Settings
from sp_scheduler.task_args import UnusableArguments, record_unusable, request_from_task

__all__ = [
    "HARD_LIMIT_GRACE",
    "SOFT_LIMIT_MARGIN",
    "TASK_NAME",
    "WorkerHousekeeping",
    "create_app",
    "reap_lost_runs",
    "send_run",
    "time_limits",
]

# How long the worker's reaper waits for a ledger connection before skipping a pass.
HOUSEKEEPING_WAIT = 1.0

log = logging.getLogger(__name__)


class WorkerHousekeeping(bootsteps.StartStopStep):  # type: ignore[misc]
    """From each worker's main process, every few seconds: mark runs of dead workers (and queued runs
    no worker claimed) `lost`, delete expired overrides, and record this worker as seen (for `jobs status`)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        runtime: WorkerRuntime = worker.app.sp_runtime
        interval = max(runtime.settings.lease_seconds / 3, 0.2)
        seen = WorkerPresence(runtime.settings.redis_url, worker.hostname)
        seen.mark()
        gate = ReaperGate(runtime.settings.lease_seconds)
        self.tref = worker.timer.call_repeatedly(interval, _housekeeping, (worker, runtime, seen, gate), priority=10)

        _grace_watched.append((worker, runtime))  # _start_grace_period below answers its warm shutdown

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


class WorkerPresence:
    """Writes `hostname -> now` into a Redis sorted set; readers treat old scores as gone."""

    def __init__(self, redis_url: str, hostname: str) -> None:
        self.client = redis_client(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.hostname = hostname

    def mark(self) -> None:
        try:
            self.client.zadd(keys.WORKERS_SEEN, {self.hostname: time.time()})
        except redis.RedisError as exc:  # the broker connection has its own retries; this is informational
            log.debug("cannot record worker presence", extra={"error": str(exc)})


def _housekeeping(worker: Any, runtime: WorkerRuntime, seen: WorkerPresence, gate: ReaperGate) -> None:
    reap_lost_runs(runtime, gate, sparing=pool_workers(worker))
    seen.mark()


def pool_workers(worker: Any) -> list[str]:
    """The ledger names (`host:pid`) of this worker's live pool processes: the runs it holds itself."""
    host = socket.gethostname()
    try:
        return [f"{host}:{pid}" for pid in worker.pool.info.get("processes", [])]
    except Exception:  # no pool yet (starting) or gone (stopping): nothing to spare
        return []


def end_grace_period(worker: Any, runtime: WorkerRuntime) -> None:
    """Record the runs of this worker's pool processes as interrupted, then trigger a cold shutdown."""
    names = pool_workers(worker)
    grace = runtime.settings.shutdown_grace
    message = f"interrupted: the worker shut down and its {grace:g} s grace period ended before the run did"
    try:
        with runtime.ledger().connection() as conn:
            for record in store.interrupt_runs(conn, workers=names, message=message):
                log.warning("run interrupted by shutdown", extra={"job": record.job_name, "run_id": record.id})
    except Exception as exc:  # the leases will expire and the reaper will mark the runs lost instead
        log.error("cannot record interrupted runs", extra={"error": str(exc)})
    os.kill(os.getpid(), signal.SIGQUIT)


def reap_lost_runs(runtime: WorkerRuntime, gate: ReaperGate | None = None, sparing: Sequence[str] = ()) -> int:
    """One reaper pass; errors are logged, never raised into the worker's timer.

    The pass runs on the main process's event loop, which hands messages to the pool processes, so
    with Postgres away it gives up after HOUSEKEEPING_WAIT rather than the pool's usual 5 s. It never
    reaps the runs of `sparing` (this worker's own live pool processes), and after an outage `gate`
    holds it back until the runs still going have renewed their leases (reaping.py).
    """
    try:
        with runtime.ledger().connection(timeout=HOUSEKEEPING_WAIT) as conn:
            store.expire_overrides(conn)  # records each override that ran out in the trail
            if gate is not None and not gate.may_reap():
                conn.execute("SELECT 1")  # a pass that does reach Postgres counts towards the gate
                return 0
            # reap_lost logs each run it marks lost
            lost = store.reap_lost(conn, sparing=sparing, queued_deadline=runtime.settings.queued_deadline)
            return len(lost)
    except Exception as exc:  # the database may be briefly down; the next pass retries
        if gate is not None:
            gate.unreachable()
        log.warning("lost-run reaper pass failed", extra={"error": str(exc)})
        return 0


def create_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app with the run_job task bound to a per-process runtime."""
    app = configured_app(settings)
    runtime = WorkerRuntime(settings_of(app))
    app.sp_runtime = runtime
    app.steps["worker"].add(WorkerHousekeeping)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        shared=False,  # Celery's default would also add it, with this runtime, to every app made later
        ignore_result=True,
        bind=True,
        max_retries=None,
        Request="sp_scheduler.pool_deaths:RunTaskRequest",  # records dead pool processes' runs at once
    )
    def run_job(task: Any, *args: Any, **kwargs: Any) -> None:
        # Arguments are checked here, not by Python's call: wrong ones still leave a row (task_args.py).
        job_name = args[0] if args else kwargs.get("job_name")
        try:
            try:
                request = request_from_task(args, kwargs)
            except UnusableArguments as bad:
                refuse_message(runtime, bad, task.request, args, kwargs)
                return
            execute_run(runtime, request)
        except DatabaseUnavailable as exc:
            # Postgres is down: keep the message instead of losing the slot; the claim makes a retry
            # safe. (If the job already ran, its run stays `running` and is reaped as `lost`.)
            attempt = task.request.retries
            log.warning(
                "ledger down; run retried later", extra={"job": job_name, "attempt": attempt, "error": str(exc)}
            )
            raise task.retry(countdown=min(2**attempt, 30)) from exc

    _runtimes.add(runtime)  # closed by _close_runtimes when this process shuts down
    return app


def refuse_message(runtime: WorkerRuntime, bad: UnusableArguments, task_request: Any, args: Any, kwargs: Any) -> None:
    """Record the run an unusable message names as failed; one that names none goes to the dead letters."""
    message_id = task_request.id
    extra = {"message_id": message_id, "reason": bad.reason, "job": bad.parts.job_name, "run_id": bad.parts.run_id}
    if runtime.ledger_call(lambda conn: record_unusable(conn, bad, runtime.hostname)):
        log.error("run message has unusable arguments; its run is recorded failed", extra=extra)
        return
    queue = (task_request.delivery_info or {}).get("routing_key") or DEFAULT_QUEUE
    raw = json.dumps({"args": args, "kwargs": kwargs}, default=repr)
    client = redis_client(runtime.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        dead_letters.set_aside(
            client, raw, kind="bad_arguments", reason=bad.reason, queue=str(queue), message_id=message_id
        )
    except redis.RedisError:  # set_aside logged the message whole; the run names nothing to record
        pass
    finally:
        client.close()


# Process-global Celery signals get one receiver each, connected here once per process; each receiver
# serves every app and worker this process made (create_app may be called many times, e.g. per CLI run).
_runtimes: weakref.WeakSet[WorkerRuntime] = weakref.WeakSet()
_grace_watched: list[tuple[Any, WorkerRuntime]] = []


def _close_runtimes(**_: Any) -> None:
    for runtime in list(_runtimes):
        runtime.close()


def _start_grace_period(how: str = "", **_: Any) -> None:
    """Warm shutdown (SIGTERM) stops consuming and waits for running runs without limit; after the
    grace period, record what still runs as interrupted and go to a cold shutdown."""
    if how != "Warm":
        return
    for worker, runtime in _grace_watched:
        timer = threading.Timer(runtime.settings.shutdown_grace, end_grace_period, (worker, runtime))
        timer.daemon = True
        timer.start()


worker_process_shutdown.connect(_close_runtimes, weak=False, dispatch_uid="sp_scheduler.worker.close_runtimes")
worker_shutting_down.connect(_start_grace_period, weak=False, dispatch_uid="sp_scheduler.worker.grace_period")
