"""What beat needs besides Redis: its settings, the watched config, and a small ledger pool.

Beat's own, so it borrows nothing of the worker's runtime (no job pool, keeper or event loop).
`beat_ledger` is the one place a BeatLedger is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from sp_scheduler import store
from sp_scheduler.beat_ledger import BeatLedger
from sp_scheduler.catalog import CatalogWatch
from sp_scheduler.errors import DatabaseUnavailable
from sp_scheduler.ledger_metrics import FAILED_STATUSES, LastRuns
from sp_scheduler.settings import Settings

log = logging.getLogger(__name__)
_R = TypeVar("_R")


class BeatResources:
    """Settings, CatalogWatch and a ledger pool opened on first use (by the ledger or metrics thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watch = CatalogWatch(settings)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """Two connections: the ledger thread's and the metrics server's."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = store.open_pool(
                    self.settings.require_database_url(),
                    min_size=2,
                    max_size=2,
                    timeout=5.0,
                    autocommit=True,
                    check_on_checkout=False,
                    synchronous_commit=self.settings.ledger_synchronous_commit,
                )
            return self._pool

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self.pool().connection()

    def ledger_call(self, call: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """One ledger call, retried once on a broken connection (the pool skips checkout checks)."""
        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    return call(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2:
                    raise DatabaseUnavailable(f"ledger unavailable: {exc}") from exc
                log.warning("ledger connection failed; retrying once", extra={"error": str(exc)})
        raise AssertionError("unreachable")

    def last_runs(self, names: Sequence[str]) -> LastRuns:
        """Newest success and failure per job, from the ledger (the metrics server thread calls this)."""

        def read(conn: psycopg.Connection[Any]) -> LastRuns:
            successes = store.last_with_status(conn, ["succeeded"], names)
            failures = store.last_with_status(conn, FAILED_STATUSES, names)
            return (
                {name: r.finished_at or r.created_at for name, r in successes.items()},
                {name: r.finished_at or r.created_at for name, r in failures.items()},
            )

        return self.ledger_call(read)

    def close(self) -> None:
        """Close the pool (after the ledger thread stopped)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
            self._pool = None


def beat_ledger(resources: BeatResources, refresh_interval: float) -> BeatLedger:
    """Beat's ledger thread: every Postgres call of beat goes through it, never through the tick."""
    settings = resources.settings
    return BeatLedger(
        resources.connection,
        reap_interval=max(settings.lease_seconds / 3, 1.0),
        lease_seconds=settings.lease_seconds,
        refresh_interval=refresh_interval,
        queued_deadline=settings.queued_deadline,
    )
