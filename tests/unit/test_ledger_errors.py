"""Which psycopg errors mean "retry later" and which "skip this item", and which connections are dropped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from sp_scheduler.ledger import LedgerRefused, LedgerUnavailable
from sp_scheduler.ledger.errors import RunExists
from sp_scheduler.ledger.postgres import PostgresLedger, is_connection_failure, translated


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), LedgerUnavailable),
        (psycopg.InterfaceError("the connection is closed"), LedgerUnavailable),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), LedgerUnavailable),
        (PoolTimeout("couldn't get a connection after 5.00 sec"), LedgerUnavailable),
        (psycopg.errors.UniqueViolation("duplicate key"), RunExists),
        (psycopg.errors.CheckViolation("violates check constraint"), LedgerRefused),
        (psycopg.errors.NumericValueOutOfRange("bigint out of range"), LedgerRefused),
    ],
    ids=["lost", "closed", "read-only-server", "pool-timeout", "duplicate", "check", "out-of-range"],
)
def test_each_error_is_one_of_the_two_failures(error: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected), translated():
        raise error
    assert is_connection_failure(error) == (expected is LedgerUnavailable)


class _Connection:
    """Stands in for a pooled connection: records whether the ledger closed it."""

    closed = False

    def close(self) -> None:
        self.closed = True


def _ledger_over(conn: _Connection) -> PostgresLedger:
    @contextmanager
    def connection() -> Iterator[Any]:
        yield conn

    return PostgresLedger(connection)


def _fail(error: Exception) -> Any:
    raise error


def test_a_connection_that_reached_a_read_only_server_is_closed_so_the_pool_replaces_it() -> None:
    conn = _Connection()
    with pytest.raises(LedgerUnavailable):
        _ledger_over(conn).call(lambda _: _fail(psycopg.errors.ReadOnlySqlTransaction("read-only")))
    assert conn.closed


def test_a_connection_whose_data_was_refused_is_kept() -> None:
    conn = _Connection()
    with pytest.raises(LedgerRefused):
        _ledger_over(conn).call(lambda _: _fail(psycopg.errors.CheckViolation("violates check constraint")))
    assert not conn.closed
