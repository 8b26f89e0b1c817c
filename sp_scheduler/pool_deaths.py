"""Record a run at once when its pool process dies or is killed at its hard time limit.

Both are seen by the worker's main process within moments (Celery calls the task request's
`on_failure` with `WorkerLostError`, or `on_timeout`), while the run's lease would take up to
`SP_RUN_LEASE` seconds to expire. The request knows the pool process's pid, and the ledger names each
run's worker as `<host>:<pid>`, so the main process closes that process's running runs itself: `lost`
with the signal or exit status, or `timeout` for a process killed past its job's timeout. The lease
stays the backstop for a whole host that disappears.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Literal

from billiard.exceptions import WorkerLostError  # type: ignore[import-untyped]
from celery.exceptions import TimeLimitExceeded
from celery.worker.request import Request

from sp_scheduler import store

log = logging.getLogger(__name__)

# How long the main process waits for a ledger connection: it also hands messages to the pool.
LEDGER_WAIT = 2.0


class RunTaskRequest(Request):  # type: ignore[misc]
    """The run_job task's request in the worker's main process."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            self._close_runs("timeout", _killed_message(self.task, timeout))

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback wraps what the pool process sent
        try:
            super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        finally:
            if isinstance(exc, WorkerLostError | SystemExit | KeyboardInterrupt):
                detail = str(exc).strip() or type(exc).__name__
                self._close_runs("lost", f"worker process {self.worker_pid} died during the run ({detail})")
            elif isinstance(exc, TimeLimitExceeded):
                self._close_runs("timeout", _killed_message(self.task, exc.args[0] if exc.args else None))

    def _close_runs(self, status: Literal["lost", "timeout"], message: str) -> None:
        if not self.worker_pid:  # never started in a pool process: nothing of it is in the ledger
            return
        runtime = self.task.app.sp_runtime
        worker = f"{socket.gethostname()}:{self.worker_pid}"
        try:
            with runtime.ledger().connection(timeout=LEDGER_WAIT) as conn:
                closed = store.end_process_runs(conn, worker=worker, status=status, message=message)
        except Exception as exc:  # Postgres away: the lease expires and the reaper marks the run lost
            log.warning("cannot record a dead pool process's runs", extra={"worker": worker, "error": repr(exc)})
            return
        for record in closed:
            log.warning(
                "run ended with its pool process",
                extra={"job": record.job_name, "run_id": record.id, "status": status, "worker": worker},
            )


def _killed_message(task: Any, hard_limit: Any) -> str:
    """Say which timeout the job overran and that the worker killed its process."""
    from sp_scheduler.worker import HARD_LIMIT_GRACE  # noqa: PLC0415 -- worker.py imports this module

    try:
        timeout = float(hard_limit) - HARD_LIMIT_GRACE
    except (TypeError, ValueError):
        return "exceeded its timeout and did not stop when interrupted; the worker killed its process"
    return (
        f"exceeded its timeout of {timeout:g} s and did not stop when interrupted;"
        f" the worker killed its process {HARD_LIMIT_GRACE:g} s past the timeout"
    )
