"""Postgres failover through libpq's multi-host URLs: a real primary and streaming standby on loopback,
the primary SIGKILLed mid-schedule, the standby promoted, and no finished run's outcome lost.

The longer version with figures is `bench/postgres_failover.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from sp_scheduler.ledger import LedgerUnavailable
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.store import open_pool
from tests.support.failover import run_failover
from tests.support.postgres_pair import PostgresPair, postgres_pair

pytestmark = pytest.mark.integration


@pytest.fixture
def pair() -> Iterator[PostgresPair]:
    with postgres_pair() as servers:
        yield servers


@pytest.mark.timeout(180)
def test_runs_resume_on_the_promoted_standby_and_no_finished_outcome_is_lost(
    pair: PostgresPair, redis_url: str, tmp_path: Path
) -> None:
    report = run_failover(pair, redis_url, tmp_path, runs_before=3, runs_after=3)
    print("\n".join(["", *report.lines()]))  # shown with -s: the time from the kill to the first run
    assert report.runs_before_kill >= 3 and report.runs_after_promotion >= 3
    assert report.finished_by_jobs >= report.runs_before_kill + report.runs_after_promotion
    assert report.outcomes_missing == []
    assert report.stuck_running == []
    assert report.seconds_kill_to_first_run < 30


def test_a_write_refused_as_read_only_is_a_lost_connection_and_that_connection_is_dropped(
    database_url: str,
) -> None:
    # A session that can only read stands in for a connection that landed on a standby.
    read_only = make_conninfo(database_url, options="-c default_transaction_read_only=on")
    pool = open_pool(read_only, min_size=1, max_size=1, timeout=5.0, autocommit=True, check_on_checkout=False)
    try:
        ledger = PostgresLedger(pool.connection)

        def backend() -> Any:
            with pool.connection() as conn:
                return conn.info.backend_pid

        before = backend()
        with pytest.raises(LedgerUnavailable, match="read-only"):
            ledger.record_slots(
                job_name="report", slots=[datetime(2026, 5, 1, tzinfo=UTC)], status="missed", message="m"
            )
        assert backend() != before  # the pool replaced it: the retry would connect afresh
    finally:
        pool.close()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM sp_job_runs").fetchone()
    assert row == (0,)
