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
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery, bootsteps
from celery.signals import worker_process_shutdown, worker_shutting_down

from sp_scheduler import dead_letters, keys, store
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import DatabaseUnavailable
from sp_scheduler.reaping import ReaperGate
from sp_scheduler.runner import RunRequest, WorkerRuntime, execute_run
from sp_scheduler.settings import Settings
from sp_scheduler.store.connection import KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL
from sp_scheduler.task_args import UnusableArguments, record_unusable, request_from_task

TASK_NAME = "sp_scheduler.run_job"
# Redis redelivers an unacked message after this long; it must outlast the longest run, or a
# second worker would pick it up (harmlessly, thanks to the ledger, but noisily).
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600
# A job's timeout is enforced three times over. The runner cancels a job that awaits past it; Celery's
# soft limit, SOFT_LIMIT_MARGIN later, interrupts one that blocks its event loop (the runner records
# `timeout`); its hard limit, HARD_LIMIT_GRACE after the timeout, kills a process that ignores even that
# (pool_deaths.py records `timeout`). The margin lets the runner's own cancellation win for well-behaved jobs.
SOFT_LIMIT_MARGIN = 1.0
HARD_LIMIT_GRACE = 5.0
# Celery waits this long after a pool process dies for a result it may have sent before marking its
# task lost; results live in Postgres, so there is nothing to wait for (Celery's default is 10 s).
WORKER_LOST_WAIT = 1.0

# How long the worker's reaper waits for a ledger connection before skipping a pass.
HOUSEKEEPING_WAIT = 1.0


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive as for Postgres (store/connection.py), where the platform names the options."""
    wanted = (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL), ("TCP_KEEPCNT", KEEPALIVE_COUNT))
    return {getattr(socket, name): value for name, value in wanted if hasattr(socket, name)}


# A Redis that vanishes without closing its connections (a failover, a NAT dropping an idle flow)
# would leave a worker waiting for the reply to its BRPOP forever, consuming nothing and logging
# nothing: keepalive probes drop such a connection within about a minute, and Celery reconnects.
REDIS_CONNECTION_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "socket_keepalive_options": _keepalive_options(),
}
BEAT_REDIS_TIMEOUT = 5.0  # beat's Redis commands take milliseconds; past this beat steps down and retries

# Publishing gives up after about a second, so a down broker becomes a one-line error, not a hang.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}

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

        def bound_warm_shutdown(how: str = "", **_: Any) -> None:
            # Warm shutdown (SIGTERM) stops consuming and waits for running runs without limit; after
            # the grace period, record what still runs as interrupted and go to a cold shutdown.
            if how == "Warm":
                timer = threading.Timer(runtime.settings.shutdown_grace, end_grace_period, (worker, runtime))
                timer.daemon = True
                timer.start()

        worker_shutting_down.connect(bound_warm_shutdown, weak=False)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


class WorkerPresence:
    """Writes `hostname -> now` into a Redis sorted set; readers treat old scores as gone."""

    def __init__(self, redis_url: str, hostname: str) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
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
    settings = settings or Settings.from_env()
    app = Celery("sp_scheduler", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=False,  # a run killed mid-way is `lost`, never silently retried
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_transport_options={"visibility_timeout": DEFAULT_VISIBILITY_TIMEOUT, **REDIS_CONNECTION_OPTIONS},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_soft_shutdown_timeout=0,  # our own grace watchdog below exits as soon as runs finish
        worker_send_task_events=False,
        worker_lost_wait=WORKER_LOST_WAIT,
        # Every item a worker cannot use is set aside, never allowed to stop it (queue_guard.py).
        worker_consumer="sp_scheduler.queue_guard:GuardedConsumer",
        enable_utc=True,
        timezone="UTC",
        redbeat_redis_url=settings.redis_url,
        # Explicit: beat's client takes none of the broker's transport options (visibility_timeout is no
        # client argument); its commands give up after BEAT_REDIS_TIMEOUT, whatever redis-py's default.
        redbeat_redis_options={**REDIS_CONNECTION_OPTIONS, "socket_timeout": BEAT_REDIS_TIMEOUT},
        redbeat_key_prefix="sp_scheduler:redbeat:",
    )
    if urlsplit(settings.redis_url).scheme in ("redis", "rediss"):
        app.conf.broker_transport = "sp_scheduler.queue_guard:GuardedTransport"
    runtime = WorkerRuntime(settings)
    app.sp_runtime = runtime
    app.steps["worker"].add(WorkerHousekeeping)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
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

    @worker_process_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _close_runtime(**_: Any) -> None:
        runtime.close()

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
    client = redis.Redis.from_url(runtime.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        dead_letters.set_aside(
            client, raw, kind="bad_arguments", reason=bad.reason, queue=str(queue), message_id=message_id
        )
    except redis.RedisError:  # set_aside logged the message whole; the run names nothing to record
        pass
    finally:
        client.close()


def time_limits(timeout: float) -> tuple[float, float]:
    """Celery's (hard, soft) time limits for a job's timeout; beat's publisher writes the same."""
    return timeout + HARD_LIMIT_GRACE, timeout + SOFT_LIMIT_MARGIN


def send_run(
    app: Celery,
    request: RunRequest,
    *,
    queue: str = DEFAULT_QUEUE,
    timeout: float | None = None,
    producer: Any = None,
) -> None:
    """Publish one run message; the per-job timeout becomes Celery's soft and hard limits (`time_limits`).

    Beat passes its long-lived producer; the CLI lets Celery pick one from the pool.
    """
    options: dict[str, Any] = {"queue": queue, "retry_policy": PUBLISH_RETRY}
    if producer is not None:
        options["producer"] = producer
    if timeout is not None:
        options["time_limit"], options["soft_time_limit"] = time_limits(timeout)
    args = request.task_args()
    # A plain repr for the message headers: Celery's saferepr costs ~0.1 ms a message, which adds up
    # when beat sends a thousand slots in one second.
    options["argsrepr"] = repr(args)
    options["kwargsrepr"] = "{}"
    app.send_task(TASK_NAME, args=args, **options)
