"""Backfill runs on both ledgers: a backfill run holds its slot as a scheduled run does, so one
(job, scheduled_for) has at most one `schedule` or `backfill` row, whoever writes first."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sp_scheduler.ledger import Ledger, RunExists
from sp_scheduler.store import Claim, RunOutcome, slot_run_id

SLOT = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
SLOTS = [SLOT + timedelta(hours=n) for n in range(4)]


def claim(ledger: Ledger, slot: datetime, *, trigger: str = "backfill", worker: str = "host-a:1", **kw: Any) -> Claim:
    """A worker's claim of the slot's run, as the backfill (or scheduled) message names it."""
    args: dict[str, Any] = {"params": {}, "lease_seconds": 60.0, "overlap": "allow", "enabled": True, **kw}
    run_id = args.pop("run_id", slot_run_id("report", slot))
    return ledger.claim(run_id=run_id, job_name="report", trigger=trigger, scheduled_for=slot, worker=worker, **args)


def test_backfill_queues_each_free_slot_in_order_and_leaves_held_ones(ledger: Ledger) -> None:
    assert claim(ledger, SLOTS[1], trigger="schedule").outcome == "run"
    ledger.record_slots(job_name="report", slots=[SLOTS[2]], status="missed", message="beat was down")
    queued = ledger.enqueue_backfill(job_name="report", slots=list(reversed(SLOTS)), params={"days": 2})
    assert [r.scheduled_for for r in queued] == [SLOTS[0], SLOTS[3]]
    for row in queued:
        assert (row.trigger, row.status, row.params) == ("backfill", "queued", {"days": 2})
        assert row.id == slot_run_id("report", row.scheduled_for or SLOT) and row.enqueued_at is not None
    holders = ledger.slot_holders(job_name="report", slots=SLOTS)
    assert {slot: (r.trigger, r.status) for slot, r in holders.items()} == {
        SLOTS[0]: ("backfill", "queued"),
        SLOTS[1]: ("schedule", "running"),
        SLOTS[2]: ("schedule", "missed"),
        SLOTS[3]: ("backfill", "queued"),
    }
    assert ledger.enqueue_backfill(job_name="report", slots=SLOTS, params={}) == []
    assert ledger.slot_holders(job_name="other", slots=SLOTS) == {}


def test_a_backfill_run_is_claimed_in_its_row_once(ledger: Ledger) -> None:
    (queued,) = ledger.enqueue_backfill(job_name="report", slots=[SLOT], params={"days": 2})
    first = claim(ledger, SLOT)
    assert first.outcome == "run" and first.record is not None
    row = first.record
    assert (row.id, row.trigger, row.status, row.scheduled_for) == (queued.id, "backfill", "running", SLOT)
    assert (row.enqueued_at, row.params) == (queued.enqueued_at, {"days": 2})
    again = claim(ledger, SLOT, worker="host-b:2")
    assert again.outcome == "duplicate" and again.reason == f"already claimed as run {queued.id} (running)"
    (done,) = ledger.finish([RunOutcome(queued.id, "succeeded", "ok")])
    assert (done.status, done.trigger) == ("succeeded", "backfill")


def test_a_backfilled_slot_refuses_beats_delivery_and_beats_record(ledger: Ledger) -> None:
    (queued,) = ledger.enqueue_backfill(job_name="report", slots=[SLOT], params={})
    scheduled = claim(ledger, SLOT, trigger="schedule")
    assert scheduled.outcome == "duplicate" and scheduled.record is not None
    assert (scheduled.record.id, scheduled.record.trigger) == (queued.id, "backfill")
    assert ledger.record_slots(job_name="report", slots=[SLOT], status="missed", message="beat was down") == 0
    assert claim(ledger, SLOT).outcome == "run"  # the backfill's own delivery still runs it


def test_a_backfill_delivery_for_a_slot_beat_ran_is_a_duplicate(ledger: Ledger) -> None:
    ran = claim(ledger, SLOT, trigger="schedule")
    assert ran.outcome == "run" and ran.record is not None
    other_id = claim(ledger, SLOT, run_id=str(uuid.uuid4()))
    assert other_id.outcome == "duplicate" and other_id.record is not None and other_id.record.id == ran.record.id
    assert claim(ledger, SLOT).outcome == "duplicate"
    assert len(ledger.history(job="report")) == 1


def test_a_backfill_message_whose_queued_row_is_missing_still_takes_its_slot_once(ledger: Ledger) -> None:
    first = claim(ledger, SLOT)
    assert first.outcome == "run" and first.record is not None and first.record.trigger == "backfill"
    assert claim(ledger, SLOT, trigger="schedule").outcome == "duplicate"
    assert len(ledger.history(job="report")) == 1


def test_one_backfill_enqueue_of_a_held_slot_is_refused(ledger: Ledger) -> None:
    claim(ledger, SLOT, trigger="schedule")
    with pytest.raises(RunExists):
        ledger.enqueue(run_id=str(uuid.uuid4()), job_name="report", trigger="backfill", scheduled_for=SLOT, params={})
    with pytest.raises(ValueError, match="needs its slot"):
        ledger.enqueue(run_id=str(uuid.uuid4()), job_name="report", trigger="backfill", scheduled_for=None, params={})


def test_racing_backfills_of_one_range_queue_each_slot_once(ledger: Ledger) -> None:
    slots = [SLOT + timedelta(minutes=n) for n in range(50)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: ledger.enqueue_backfill(job_name="report", slots=slots, params={}), range(6)))
    queued = sorted(r.scheduled_for or SLOT for batch in results for r in batch)
    assert queued == slots
    assert len(ledger.history(job="report", limit=1000)) == len(slots)


def test_a_backfill_racing_beats_deliveries_leaves_one_row_per_slot(ledger: Ledger) -> None:
    slots = [SLOT + timedelta(minutes=n) for n in range(30)]

    def beat(slot: datetime) -> Claim:
        return claim(ledger, slot, trigger="schedule", worker="host-b:2")

    with ThreadPoolExecutor(max_workers=4) as pool:
        backfill = pool.submit(ledger.enqueue_backfill, job_name="report", slots=slots, params={})
        scheduled = list(pool.map(beat, slots))
        queued = backfill.result()
    ran = [c.record.scheduled_for for c in scheduled if c.outcome == "run" and c.record is not None]
    assert sorted([*ran, *(r.scheduled_for for r in queued)]) == slots  # each slot once, by one or the other
    rows = ledger.history(job="report", limit=1000)
    assert sorted(r.scheduled_for or SLOT for r in rows) == slots


def test_last_with_status_can_leave_backfill_runs_out(ledger: Ledger) -> None:
    assert claim(ledger, SLOT, trigger="schedule").outcome == "run"
    ledger.finish([RunOutcome(slot_run_id("report", SLOT), "succeeded", None)])
    (old,) = ledger.enqueue_backfill(job_name="report", slots=[SLOT - timedelta(days=9)], params={})
    claim(ledger, SLOT - timedelta(days=9))
    ledger.finish([RunOutcome(old.id, "succeeded", None)])
    assert ledger.last_with_status(["succeeded"])["report"].id == old.id
    live = ledger.last_with_status(["succeeded"], ["report"], triggers=["schedule", "startup", "manual"])
    assert live["report"].id == slot_run_id("report", SLOT)
    assert ledger.last_with_status(["succeeded"], triggers=["backfill"])["report"].id == old.id
    assert ledger.last_with_status(["succeeded"], triggers=["startup"]) == {}
