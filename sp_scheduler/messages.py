"""The run message: the one task's name, what it carries, and how one run is published.

Beat, the worker and the CLI all send or read this message; it lives here, apart from the worker's
runtime, so beat can publish without importing the worker (or the runner, or their pools and loops).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sp_scheduler import store
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.jobs import Trigger

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "sp_scheduler.run_job"
# A job's timeout is enforced three times over. The runner cancels a job that awaits past it; Celery's
# soft limit, SOFT_LIMIT_MARGIN later, interrupts one that blocks its event loop (the runner records
# `timeout`); its hard limit, HARD_LIMIT_GRACE after the timeout, kills a process that ignores even that
# (pool_deaths.py records `timeout`). The margin lets the runner's own cancellation win for well-behaved jobs.
SOFT_LIMIT_MARGIN = 1.0
HARD_LIMIT_GRACE = 5.0
# Publishing gives up after about a second, so a down broker becomes a one-line error, not a hang.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


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
