"""What beat needs besides Redis: its settings, the watched config, and a small ledger pool.

Beat's own, so it borrows nothing of the worker's runtime (no job pool, keeper or event loop).
`beat_ledger` is the one place a BeatLedger is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from sp_scheduler.beat_ledger import BeatLedger
from sp_scheduler.catalog import CatalogWatch
from sp_scheduler.ledger import retry_once
from sp_scheduler.ledger.postgres import PostgresLedger, open_ledger_pool
from sp_scheduler.ledger_metrics import FAILED_STATUSES, LastRuns
from sp_scheduler.settings import Settings
from sp_scheduler.status import LATENESS_TRIGGERS

log = logging.getLogger(__name__)


class BeatResources:
    """Settings, CatalogWatch and a ledger pool opened on first use (by the ledger or metrics thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watch = CatalogWatch(settings)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()
        self._ledger: PostgresLedger | None = None

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """Two connections: the ledger thread's and the metrics server's."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = open_ledger_pool(self.settings)
            return self._pool

    def ledger(self) -> PostgresLedger:
        """The ledger over this pool: the contract beat's ledger thread and metrics server talk to."""
        if self._ledger is None:
            self._ledger = PostgresLedger(lambda: self.pool().connection())
        return self._ledger

    def last_runs(self, names: Sequence[str]) -> LastRuns:
        """Newest success and failure per job, from the ledger (the metrics server thread calls this)."""
        ledger = self.ledger()
        successes = retry_once(lambda: ledger.last_with_status(["succeeded"], names, triggers=LATENESS_TRIGGERS))
        failures = retry_once(lambda: ledger.last_with_status(FAILED_STATUSES, names, triggers=LATENESS_TRIGGERS))
        return (
            {name: r.finished_at or r.created_at for name, r in successes.items()},
            {name: r.finished_at or r.created_at for name, r in failures.items()},
        )

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
        resources.ledger(),
        reap_interval=max(settings.lease_seconds / 3, 1.0),
        lease_seconds=settings.lease_seconds,
        refresh_interval=refresh_interval,
        queued_deadline=settings.queued_deadline,
    )
