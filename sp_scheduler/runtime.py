"""Per-process resources of a worker (and of `jobs run --local`): the ledger, its pool, the
event loop, the jobs' database pool and the run keeper. Re-created after fork.

The runner and the keeper talk to `run_ledger()`, a `Ledger` (ledger/contract.py): Postgres in every
deployment, or the ledger a test hands in (`WorkerRuntime(settings, ledger=InMemoryLedger())`), so
the runner's rules are tested without a server.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sp_scheduler import store
from sp_scheduler.catalog import CatalogWatch
from sp_scheduler.keeper import RunKeeper
from sp_scheduler.ledger import Ledger, retry_once
from sp_scheduler.ledger.postgres import PostgresLedger, open_ledger_pool
from sp_scheduler.settings import Settings

if TYPE_CHECKING:
    from sp_scheduler.metrics import RunMetrics

_R = TypeVar("_R")
# At shutdown, how long a process keeps trying to record outcomes Postgres has not taken yet.
OUTCOME_FLUSH_SECONDS = 10.0


class WorkerRuntime:
    """Per-process resources: ledger pool, event loop, job database pool. Re-created after fork."""

    def __init__(self, settings: Settings, *, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.config = CatalogWatch(settings)
        self.services_dir = Path(settings.services_dir)
        self.output_dir = Path(settings.output_dir)
        self.hostname = f"{socket.gethostname()}:{os.getpid()}"
        self._pid = os.getpid()
        self._given_ledger = ledger  # a ledger handed in (tests) is kept across forks and never closed
        self._run_ledger: Ledger | None = ledger
        self._ledger: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._job_pool: AsyncConnectionPool[Any] | None = None
        self._keeper: RunKeeper | None = None
        self._metrics: RunMetrics | None = None

    def load_before_fork(self) -> None:
        """Load the catalogue in the worker's main process, before its pool forks: every pool process
        then starts with it, rather than reading the config on its first run (0.2 s for 1,000 jobs,
        which made the first burst after a worker's start late), and a config broken later is a failed
        reload that keeps this one, not a first load that fails."""
        self.config.catalog()

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
            self._ledger = open_ledger_pool(self.settings)
        return self._ledger

    def run_ledger(self) -> Ledger:
        """The ledger the runner, the keeper and beat's ledger thread use; its pool opens on first use."""
        if self._run_ledger is None:
            self._run_ledger = self._postgres(lambda: self.ledger().connection())
        return self._run_ledger

    def with_ledger(self, call: Callable[[Ledger], _R]) -> _R:
        """Run one ledger call; retried once on a broken connection, then `LedgerUnavailable` (retry.py)."""
        ledger = self.run_ledger()
        return retry_once(lambda: call(ledger))

    def ledger_call(self, call: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """Run one call on a connection of the ledger pool, with `with_ledger`'s retry (store functions
        outside the contract)."""
        ledger = self._postgres(lambda: self.ledger().connection())
        return retry_once(lambda: ledger.call(call))

    def keeper(self) -> RunKeeper:
        """This process's run keeper: leases, log lines and outcomes (one thread, started on first use)."""
        self._check_fork()
        if self._keeper is None:
            metrics = self.metrics()
            # A fresh connection outside the pool, closed after use: the keeper's way round a pool in backoff.
            fallback = None
            if self._given_ledger is None:
                fallback = self._postgres(lambda: store.connect(self.settings.require_database_url(), autocommit=True))
            self._keeper = RunKeeper(
                self.run_ledger(),
                self.settings.lease_seconds,
                on_recorded=metrics.finished if metrics is not None else None,
                fallback=fallback,
            )
        return self._keeper

    @staticmethod
    def _postgres(connection: Callable[[], Any]) -> PostgresLedger:
        return PostgresLedger(connection)

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

    def job_pool(self) -> AsyncConnectionPool[Any] | None:
        """One async pool per process for the jobs' own queries, opened on this process's loop.

        None only for a runtime handed a ledger with no database configured (tests): a job that asks
        for the database then hears that this process has none (`JobContext.db_pool`).
        """
        loop = self.loop()
        if self._job_pool is None:
            if self._given_ledger is not None and self.settings.database_url is None:
                return None
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                store.conninfo_with_defaults(self.settings.require_database_url()),
                min_size=1,
                max_size=self.settings.db_pool_size,
                open=False,
                name="sp-jobs",
                # A job gets a working connection: one the server dropped (a restart, a failover) is
                # replaced at checkout, for one round trip per checkout, small beside a job's own queries.
                check=AsyncConnectionPool.check_connection,
                reconnect_timeout=store.RECONNECT_TIMEOUT_SECONDS,
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
