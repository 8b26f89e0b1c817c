"""The ledger in Postgres: the `sp_scheduler.store` functions, each on a connection of its own.

The connection comes from a factory (a pool's `connection`, or `store.connect` for a fresh one), so
this class holds no connection and survives a Postgres restart. psycopg's errors become the
contract's two failures here, and only here (`translated`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from sp_scheduler import store
from sp_scheduler.jobs import Trigger
from sp_scheduler.ledger.contract import SlotStatus
from sp_scheduler.ledger.errors import LedgerRefused, LedgerUnavailable, RunExists
from sp_scheduler.settings import Settings
from sp_scheduler.store import Claim, LogRecordRow, Overlap, Override, OverrideChange, RunOutcome, RunRecord, RunStatus

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
_R = TypeVar("_R")


def open_ledger_pool(settings: Settings) -> ConnectionPool[psycopg.Connection[Any]]:
    """The small sync pool a process writes the ledger through: two connections (a worker's claims and
    its run keeper; beat's ledger thread and metrics server), no checkout check (a dropped connection
    fails once and `retry_once` takes a fresh one)."""
    return store.open_pool(
        settings.require_database_url(),
        min_size=2,
        max_size=2,
        timeout=5.0,
        autocommit=True,
        check_on_checkout=False,
        synchronous_commit=settings.ledger_synchronous_commit,
    )


def is_connection_failure(exc: BaseException) -> bool:
    """Whether `exc` says the connection failed (retry later) rather than that the data was refused.

    A read-only transaction error counts as a lost connection: it means the connection reached a
    server that is not the primary (a standby, or a URL still pointing at a demoted one), so the data
    was never judged, and a new connection (to the primary a failover promoted) will take it.
    """
    return isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.ReadOnlySqlTransaction | PoolTimeout
    )


@contextmanager
def translated() -> Iterator[None]:
    """psycopg's errors as the contract's: a lost connection is `LedgerUnavailable`, a refusal
    `LedgerRefused` (`RunExists` for a taken run id). Other errors (UnknownRun, ValueError) pass."""
    try:
        yield
    except psycopg.Error as exc:
        if is_connection_failure(exc):
            raise LedgerUnavailable(str(exc)) from exc
        if isinstance(exc, psycopg.errors.UniqueViolation):
            raise RunExists(str(exc)) from exc
        raise LedgerRefused(str(exc)) from exc
    except PoolTimeout as exc:
        raise LedgerUnavailable(str(exc)) from exc


class PostgresLedger:
    """`Ledger` over Postgres; each call checks out one connection and runs one store function."""

    def __init__(self, connection: ConnectionFactory) -> None:
        self._connection = connection

    def call(self, work: Callable[[psycopg.Connection[Any]], _R]) -> _R:
        """Run `work` on one connection, its errors translated (for store functions outside the contract).

        A connection that failed is closed before it goes back, so a pool discards it and the retry
        connects afresh: after a failover, never again to the old primary or to a read-only server.
        """
        with translated(), self._connection() as conn:
            try:
                return work(conn)
            except psycopg.Error as exc:
                if is_connection_failure(exc):
                    conn.close()
                raise

    def enqueue(
        self,
        *,
        run_id: str,
        job_name: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        params: Mapping[str, Any],
    ) -> RunRecord:
        return self.call(
            lambda conn: store.enqueue_run(
                conn, run_id=run_id, job_name=job_name, trigger=trigger, scheduled_for=scheduled_for, params=params
            )
        )

    def enqueue_backfill(
        self, *, job_name: str, slots: Sequence[datetime], params: Mapping[str, Any]
    ) -> list[RunRecord]:
        return self.call(lambda conn: store.enqueue_backfill(conn, job_name=job_name, slots=slots, params=params))

    def slot_holders(self, *, job_name: str, slots: Sequence[datetime]) -> dict[datetime, RunRecord]:
        return self.call(lambda conn: store.slot_holders(conn, job_name=job_name, slots=slots))

    def claim(
        self,
        *,
        run_id: str,
        job_name: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        params: Mapping[str, Any],
        worker: str,
        lease_seconds: float,
        overlap: Overlap,
        enabled: bool,
        use_override: bool = False,
        finishing: Sequence[RunOutcome] = (),
        logs: Sequence[LogRecordRow] = (),
        retrying: bool = False,
    ) -> Claim:
        return self.call(
            lambda conn: store.claim_run(
                conn,
                run_id=run_id,
                job_name=job_name,
                trigger=trigger,
                scheduled_for=scheduled_for,
                params=params,
                worker=worker,
                lease_seconds=lease_seconds,
                overlap=overlap,
                enabled=enabled,
                use_override=use_override,
                finishing=finishing,
                logs=logs,
                retrying=retrying,
            )
        )

    def finish(self, outcomes: Sequence[RunOutcome], *, logs: Sequence[LogRecordRow] = ()) -> list[RunRecord]:
        return self.call(lambda conn: store.finish_runs(conn, outcomes, logs=logs))

    def renew_leases(self, run_ids: Sequence[str], lease_seconds: float) -> set[str]:
        if not run_ids:
            return set()
        return self.call(lambda conn: store.renew_leases(conn, run_ids, lease_seconds))

    def write_logs(self, rows: Sequence[LogRecordRow]) -> int:
        if not rows:
            return 0
        return self.call(lambda conn: store.write_logs(conn, rows))

    def reap_lost(self, *, sparing: Sequence[str] = (), queued_deadline: float | None = None) -> list[RunRecord]:
        return self.call(lambda conn: store.reap_lost(conn, sparing=sparing, queued_deadline=queued_deadline))

    def record_slots(self, *, job_name: str, slots: Sequence[datetime], status: SlotStatus, message: str) -> int:
        if not slots:
            return 0
        return self.call(
            lambda conn: store.record_slots(conn, job_name=job_name, slots=slots, status=status, message=message)
        )

    def get_run(self, run_id: str) -> RunRecord:
        return self.call(lambda conn: store.get_run(conn, run_id))

    def history(self, *, job: str | None = None, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        return self.call(lambda conn: store.history(conn, job=job, status=status, limit=limit))

    def last_runs(self, job_names: Sequence[str] | None = None) -> dict[str, RunRecord]:
        return self.call(lambda conn: store.last_runs(conn, job_names))

    def last_with_status(
        self,
        statuses: Sequence[RunStatus],
        job_names: Sequence[str] | None = None,
        *,
        triggers: Sequence[Trigger] | None = None,
    ) -> dict[str, RunRecord]:
        return self.call(lambda conn: store.last_with_status(conn, statuses, job_names, triggers=triggers))

    def set_enabled(
        self,
        job_name: str,
        *,
        enabled: bool,
        actor: str,
        reason: str | None = None,
        expires_at: datetime | None = None,
    ) -> Override:
        return self.call(
            lambda conn: store.set_enabled(
                conn, job_name, enabled=enabled, actor=actor, reason=reason, expires_at=expires_at
            )
        )

    def reset_override(self, job_name: str, *, actor: str, reason: str | None = None) -> Override | None:
        return self.call(lambda conn: store.reset_override(conn, job_name, actor=actor, reason=reason))

    def overrides(self) -> dict[str, Override]:
        return self.call(store.get_overrides)

    def expire_overrides(self) -> list[Override]:
        return self.call(store.expire_overrides)

    def override_changes(self, job_name: str, *, limit: int = 5) -> list[OverrideChange]:
        return self.call(lambda conn: store.override_changes(conn, job_name, limit=limit))
