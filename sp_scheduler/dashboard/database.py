"""The dashboard's Postgres access: a small pool, used from a thread pool, that survives outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from sp_scheduler.errors import DatabaseUnavailable
from sp_scheduler.ledger.postgres import is_connection_failure
from sp_scheduler.redact import postgres_where, redact_text
from sp_scheduler.store import open_pool, require_current_schema

log = logging.getLogger(__name__)

_R = TypeVar("_R")
POOL_SIZE = 6  # the jobs page runs its four reads at once
CHECKOUT_TIMEOUT = 5.0  # seconds a request waits for a connection before it answers 503


class Database:
    """Runs store reads on pooled connections in worker threads; a connection failure is a 503.

    The pool opens on first use, so the server starts (and answers 503) while Postgres is down. A
    failure closes the pool and the next request opens a fresh one, so the server serves again as
    soon as Postgres is back, whatever state the old connections were left in.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The server as it may be shown: host, port and database, never a password."""
        return postgres_where(self.url)

    def _open(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._pool is None:
                pool = open_pool(
                    self.url, min_size=1, max_size=POOL_SIZE, name="sp-dashboard", timeout=CHECKOUT_TIMEOUT
                )
                try:
                    with pool.connection() as conn:
                        require_current_schema(conn)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def _discard(self, pool: ConnectionPool[psycopg.Connection[Any]]) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.close(timeout=0)

    def call(self, work: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """`work` on one pooled connection (in the calling thread); `DatabaseUnavailable` on a lost connection."""
        pool = self._open()
        try:
            with pool.connection() as conn:
                return work(conn)
        except psycopg.Error as exc:
            if not is_connection_failure(exc):
                raise
            self._discard(pool)
            reason = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.url)
            log.warning("dashboard lost Postgres", extra={"database": self.where, "error": reason})
            raise DatabaseUnavailable(f"Postgres at {self.where} is unavailable: {reason}") from None

    async def run(self, work: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """`call` in a worker thread, so the event loop goes on serving while Postgres answers."""
        return await run_in_threadpool(self.call, work)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
