"""The run keeper against a real Postgres: outcomes written after the task returns, batched, kept through
an outage, and flushed at shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sp_scheduler.keeper import OUTCOME_LINGER, RunKeeper
from sp_scheduler.ledger import LedgerRefused
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.runlog import RunLogBuffer, run_logger
from sp_scheduler.store import RunOutcome, RunRecord, get_run, open_pool, query_logs
from tests.support import wait_until
from tests.support.ledger import claim
from tests.support.proxy import CuttableProxy, through

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@contextmanager
def running_keeper(
    url: str, on_recorded: Callable[[RunRecord], None] | None = None, linger: float = OUTCOME_LINGER
) -> Iterator[RunKeeper]:
    """A keeper on its own ledger pool (as a worker process has), stopped and closed afterwards."""
    pool = open_pool(url, min_size=1, max_size=2, timeout=1.0, autocommit=True, check_on_checkout=False)
    keeper = RunKeeper(PostgresLedger(pool.connection), lease_seconds=60, on_recorded=on_recorded, linger=linger)
    try:
        yield keeper
    finally:
        keeper.stop(timeout=5)
        pool.close()


def claimed(conn: psycopg.Connection[Any], minute: int) -> RunRecord:
    result = claim(conn, "report", SLOT + timedelta(minutes=minute), overlap="allow")
    assert result.outcome == "run" and result.record is not None
    return result.record


def tracked(keeper: RunKeeper, run: RunRecord) -> RunLogBuffer:
    buffer = RunLogBuffer("report", run.id)
    keeper.track(run.id, buffer)
    run_logger("report", buffer).info("job started")
    return buffer


def test_an_outcome_handed_over_is_recorded_with_its_log_lines(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    recorded: list[RunRecord] = []
    with running_keeper(database_url, recorded.append) as keeper:
        runs = [claimed(conn, minute) for minute in range(5)]
        for run in runs:
            tracked(keeper, run)
        futures = [keeper.finish(RunOutcome(run.id, "succeeded", "done", items_processed=3)) for run in runs]
        records = [future.result(timeout=10) for future in futures]
    assert [(r.id, r.status, r.items_processed) for r in records] == [(run.id, "succeeded", 3) for run in runs]
    assert [r.id for r in recorded] == [run.id for run in runs]
    assert all(get_run(conn, run.id).status == "succeeded" for run in runs)
    assert [row.message for _, row in query_logs(conn, run_id=runs[0].id)] == ["job started"]


def test_the_next_claim_carries_the_waiting_outcome_and_its_log_lines(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    recorded: list[RunRecord] = []
    with running_keeper(database_url, recorded.append, linger=3600) as keeper:  # the thread never gets to it
        run = claimed(conn, 0)
        tracked(keeper, run)
        future = keeper.finish(RunOutcome(run.id, "succeeded", "done", items_processed=2))
        taken = keeper.take_outcomes()
        assert [pending.outcome.run_id for pending in taken] == [run.id]
        assert keeper.take_outcomes() == []  # taken once
        result = claim(
            conn,
            "report",
            None,
            trigger="manual",
            overlap="allow",
            finishing=[pending.outcome for pending in taken],
            logs=[line for pending in taken for line in pending.logs],
        )
        keeper.recorded(taken, result.finished)
        record = future.result(timeout=0)
        assert keeper.pending() == 0
    assert (record.status, record.items_processed) == ("succeeded", 2)
    assert recorded == [record] and get_run(conn, run.id) == record
    assert [row.message for _, row in query_logs(conn, run_id=run.id)] == ["job started"]


def test_outcomes_a_failed_claim_gives_back_are_written_by_the_keeper_at_once(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    with running_keeper(database_url, linger=3600) as keeper:
        run = claimed(conn, 0)
        tracked(keeper, run)
        future = keeper.finish(RunOutcome(run.id, "failed", "broke"))
        keeper.release(keeper.take_outcomes())
        assert future.result(timeout=10).status == "failed"


def test_outcomes_are_kept_through_a_postgres_outage_and_written_when_it_is_back(
    proxy: CuttableProxy, database_url: str, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with running_keeper(through(database_url, proxy)) as keeper:
        run = claimed(conn, 0)
        tracked(keeper, run)
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="sp_scheduler.keeper"):
            future = keeper.finish(RunOutcome(run.id, "failed", "it broke", elapsed_seconds=0.01))
            wait_until(lambda: "cannot record run outcomes yet; retrying" in caplog.text, timeout=30)
        assert not future.done() and keeper.pending() == 1
        assert get_run(conn, run.id).status == "running"
        proxy.restore()
        record = future.result(timeout=60)
    assert (record.status, record.message) == ("failed", "it broke")
    assert record.started_at is not None and record.finished_at == record.started_at + timedelta(seconds=0.01)
    assert get_run(conn, run.id).status == "failed"


def test_stop_writes_pending_outcomes_before_returning(database_url: str, conn: psycopg.Connection[Any]) -> None:
    with running_keeper(database_url) as keeper:
        runs = [claimed(conn, minute) for minute in range(3)]
        for run in runs:
            tracked(keeper, run)
            keeper.finish(RunOutcome(run.id, "succeeded", None))
        keeper.stop(timeout=10)
        assert [get_run(conn, run.id).status for run in runs] == ["succeeded"] * 3


def test_stop_gives_up_after_its_timeout_and_leaves_the_run_to_the_reaper(
    proxy: CuttableProxy, database_url: str, conn: psycopg.Connection[Any]
) -> None:
    with running_keeper(through(database_url, proxy)) as keeper:
        run = claimed(conn, 0)
        tracked(keeper, run)
        proxy.cut()
        future = keeper.finish(RunOutcome(run.id, "succeeded", None))
        keeper.stop(timeout=0.5)
    with pytest.raises(RuntimeError, match="stopped before the outcome was recorded"):
        future.result(timeout=0)
    assert get_run(conn, run.id).status == "running"  # its lease runs out and the reaper marks it lost


def test_an_outcome_postgres_refuses_does_not_take_the_rest_of_its_batch_with_it(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    with running_keeper(database_url, linger=3600) as keeper:  # nothing is written until released
        runs = [claimed(conn, minute) for minute in range(3)]
        for run in runs:
            tracked(keeper, run)
        counts = [1, 10**20, 2]  # the middle one is out of range for a bigint column
        futures = [
            keeper.finish(RunOutcome(r.id, "succeeded", "done", items_processed=n))
            for r, n in zip(runs, counts, strict=True)
        ]
        keeper.release(keeper.take_outcomes())  # as a failed claim does: one batch, written at once
        assert futures[0].result(timeout=10).items_processed == 1
        assert futures[2].result(timeout=10).items_processed == 2
        with pytest.raises(LedgerRefused, match="out of range for type bigint"):  # psycopg's DataError, as the ledger's
            futures[1].result(timeout=10)
    assert get_run(conn, runs[1].id).status == "running"  # left to the reaper
