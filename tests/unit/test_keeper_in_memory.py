"""The run keeper on the in-memory ledger: leases kept alive, outcomes written, retried while the
ledger is away, a refused outcome settled alone, a reaped run's log told so. No server needed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sp_scheduler.keeper import RunKeeper
from sp_scheduler.ledger import LedgerRefused
from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.runlog import RunLogBuffer
from sp_scheduler.store import RunOutcome, RunRecord
from tests.support import wait_until
from tests.support.flaky_ledger import FlakyLedger
from tests.support.manual_runs import claim_manual


@contextmanager
def running_keeper(ledger: object, lease_seconds: float = 60.0, linger: float = 0.0) -> Iterator[RunKeeper]:
    keeper = RunKeeper(ledger, lease_seconds, linger=linger)  # type: ignore[arg-type]
    try:
        yield keeper
    finally:
        keeper.stop(timeout=2)


def claimed(ledger: InMemoryLedger, job: str = "cleanup", lease_seconds: float = 60.0) -> RunRecord:
    claim = claim_manual(ledger, job, lease_seconds=lease_seconds)
    assert claim.outcome == "run" and claim.record is not None
    return claim.record


def tracked(keeper: RunKeeper, run: RunRecord) -> RunLogBuffer:
    buffer = RunLogBuffer(run.job_name, run.id)
    keeper.track(run.id, buffer)
    return buffer


def test_leases_are_renewed_while_a_run_goes_on_so_no_reaper_takes_it() -> None:
    ledger = InMemoryLedger()
    run = claimed(ledger, lease_seconds=0.3)
    assert run.lease_expires_at is not None
    with running_keeper(ledger, lease_seconds=0.3) as keeper:
        tracked(keeper, run)
        first = run.lease_expires_at
        wait_until(lambda: (ledger.get_run(run.id).lease_expires_at or first) > first, timeout=5)
        wait_until(lambda: ledger.now() > first, timeout=5)  # the claim's lease is over; the renewed one is not
        assert ledger.reap_lost() == []
        keeper.untrack(run.id)


def test_an_outcome_is_written_with_the_runs_log_lines() -> None:
    ledger = InMemoryLedger()
    run = claimed(ledger)
    with running_keeper(ledger) as keeper:
        buffer = tracked(keeper, run)
        logger = logging.getLogger("tests.keeper.job")
        logger.addHandler(buffer)
        try:
            logger.warning("halfway", extra={"done": 5})
        finally:
            logger.removeHandler(buffer)
        record = keeper.finish(RunOutcome(run.id, "succeeded", "done", items_processed=3)).result(timeout=5)
        assert keeper.pending() == 0 and not keeper.tracks(run.id)
    assert (record.status, record.message, record.items_processed) == ("succeeded", "done", 3)
    assert ledger.get_run(run.id) == record
    assert [(row.message, row.fields.get("done")) for row in ledger.log_rows if row.run_id == run.id] == [
        ("halfway", 5)
    ]


def test_an_outcome_is_kept_and_retried_while_the_ledger_is_unavailable() -> None:
    inner = InMemoryLedger()
    ledger = FlakyLedger(inner)
    run = claimed(inner)
    ledger.down.set()
    with running_keeper(ledger) as keeper:
        tracked(keeper, run)
        future = keeper.finish(RunOutcome(run.id, "failed", "it broke"))
        wait_until(lambda: ledger.calls.get("finish", 0) >= 2, timeout=5, message="the keeper retries")
        assert not future.done() and keeper.pending() == 1 and keeper.tracks(run.id)
        assert inner.get_run(run.id).status == "running"
        ledger.down.clear()
        record = future.result(timeout=5)
    assert (record.status, record.message) == ("failed", "it broke")


def test_an_outcome_the_ledger_refuses_does_not_take_its_batch_with_it() -> None:
    inner = InMemoryLedger()
    ledger = FlakyLedger(inner)
    runs = [claimed(inner) for _ in range(3)]
    bad = runs[1].id
    ledger.refuse = lambda name, args, kwargs: name == "finish" and any(o.run_id == bad for o in args[0])
    with running_keeper(ledger, linger=3600) as keeper:  # nothing is written until released
        for run in runs:
            tracked(keeper, run)
        futures = [keeper.finish(RunOutcome(run.id, "succeeded", "done")) for run in runs]
        keeper.release(keeper.take_outcomes())  # as a failed claim does: one batch, written at once
        assert futures[0].result(timeout=5).status == futures[2].result(timeout=5).status == "succeeded"
        with pytest.raises(LedgerRefused):
            futures[1].result(timeout=5)
    assert inner.get_run(bad).status == "running"  # left to the reaper


def test_a_run_reaped_while_it_still_runs_says_so_and_records_its_true_outcome() -> None:
    ledger = InMemoryLedger()
    run = claimed(ledger, lease_seconds=0.001)
    wait_until(ledger.reap_lost, timeout=5)
    lost = ledger.get_run(run.id)
    with running_keeper(ledger, lease_seconds=0.15) as keeper:
        tracked(keeper, run)
        notes = wait_until(
            lambda: [row.message for row in ledger.log_rows if row.run_id == run.id], timeout=5, message="a note"
        )
        assert notes == [
            "run no longer marked running in the ledger (a reaper marked it lost) while it still"
            " runs here; its outcome will say so"
        ]
        record = keeper.finish(RunOutcome(run.id, "succeeded", "rested")).result(timeout=5)
    assert record.message == f"rested [succeeded after it had been marked lost: {lost.message}]"
