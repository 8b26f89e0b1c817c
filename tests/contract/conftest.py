"""The contract suite's `ledger` fixture: every test runs once per implementation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sp_scheduler.ledger import Ledger
from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.store import open_pool


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """An empty ledger: in memory, or a fresh Postgres database through a pool as workers use it."""
    if request.param == "memory":
        yield InMemoryLedger()
        return
    url = request.getfixturevalue("database_url")
    pool = open_pool(url, min_size=1, max_size=2, timeout=5.0, autocommit=True, check_on_checkout=False)
    try:
        yield PostgresLedger(pool.connection)
    finally:
        pool.close()
