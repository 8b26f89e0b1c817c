"""Lease keeping: one background thread per worker process extends the leases of the runs in flight.

A run's row carries `lease_expires_at`; while the run goes on, this thread pushes it forward every
third of the lease and flushes the run's buffered log lines. If the process dies, the pushing stops,
the lease runs out, and any worker or beat marks the run `lost`. The thread is independent of the
job's event loop, so a job that blocks its loop does not look dead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from sp_scheduler import store
from sp_scheduler.runlog import RunLogBuffer, flush

log = logging.getLogger(__name__)

LedgerConnection = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class LeaseKeeper:
    """Tracks the runs this process is executing and keeps their leases alive."""

    def __init__(self, connection: LedgerConnection, lease_seconds: float) -> None:
        self._connection = connection
        self.lease_seconds = lease_seconds
        self.interval = max(lease_seconds / 3, 0.05)
        self._runs: dict[str, RunLogBuffer] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, run_id: str, buffer: RunLogBuffer) -> None:
        """Start keeping `run_id` alive (and flushing its log lines)."""
        with self._lock:
            self._runs[run_id] = buffer
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sp-lease-keeper", daemon=True)
                self._thread.start()

    def untrack(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def beat_once(self) -> None:
        """One pass: extend every tracked lease and write pending log lines."""
        with self._lock:
            runs = dict(self._runs)
        if not runs:
            return
        with self._connection() as conn:
            store.heartbeat(conn, list(runs), self.lease_seconds)
            for buffer in runs.values():
                flush(buffer, lambda rows: store.write_logs(conn, rows))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat_once()
            except Exception as exc:  # a missed beat is retried next interval; the lease tolerates two
                log.warning("lease heartbeat failed", extra={"error": str(exc)})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
