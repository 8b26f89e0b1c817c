"""One suite, both ledgers: what Postgres does (sp_claim_run, sp_finish_runs, the store's statements),
the in-memory ledger does too. Written from the Postgres behaviour; run on both."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sp_scheduler.errors import UnknownRun
from sp_scheduler.ledger import Ledger, LedgerRefused, RunExists
from sp_scheduler.store import Claim, RunOutcome, RunRecord, slot_run_id
from tests.support import wait_until

SLOT = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
PAST = datetime(2020, 1, 1, tzinfo=UTC)


def claim(ledger: Ledger, job: str = "cleanup", slot: datetime | None = SLOT, **kw: Any) -> Claim:
    """A claim as a worker makes it, naming only what the test is about."""
    trigger = kw.pop("trigger", "schedule" if slot is not None else "manual")
    run_id = kw.pop("run_id", None) or (slot_run_id(job, slot) if slot is not None else str(uuid.uuid4()))
    args: dict[str, Any] = {
        "params": {"days": 30},
        "worker": "host-a:1",
        "lease_seconds": 60.0,
        "overlap": "skip",
        "enabled": True,
    }
    args.update(kw)
    return ledger.claim(run_id=run_id, job_name=job, trigger=trigger, scheduled_for=slot, **args)


def ran(ledger: Ledger, *args: Any, **kw: Any) -> RunRecord:
    """Claim something that must run; its row."""
    result = claim(ledger, *args, **kw)
    assert result.outcome == "run" and result.record is not None, result
    return result.record


def eventually(check: Callable[[], Any]) -> None:
    wait_until(check, timeout=5)


def test_a_slot_runs_once_and_a_second_delivery_is_a_duplicate(ledger: Ledger) -> None:
    first = ran(ledger)
    assert (first.id, first.status, first.trigger, first.scheduled_for) == (
        slot_run_id("cleanup", SLOT),
        "running",
        "schedule",
        SLOT,
    )
    assert first.worker == "host-a:1" and first.started_at is not None and first.params == {"days": 30}
    assert first.lease_expires_at is not None and first.lease_expires_at > first.started_at
    again = claim(ledger, worker="host-b:2")
    assert again.outcome == "duplicate" and again.record == first
    assert again.reason == f"already claimed as run {first.id} (running)"


def test_slots_recorded_not_to_run_keep_their_rows_and_refuse_claims(ledger: Ledger) -> None:
    slots = [SLOT, SLOT + timedelta(minutes=1)]
    assert ledger.record_slots(job_name="tick", slots=slots, status="missed", message="beat was down") == 2
    assert (
        ledger.record_slots(job_name="tick", slots=[*slots, SLOT + timedelta(minutes=2)], status="skipped", message="x")
        == 1
    )
    row = ledger.get_run(slot_run_id("tick", SLOT))
    assert (row.status, row.message, row.trigger, row.scheduled_for) == ("missed", "beat was down", "schedule", SLOT)
    assert row.finished_at is not None and row.started_at is None
    late = claim(ledger, "tick", SLOT)
    assert late.outcome == "duplicate" and late.reason == f"already claimed as run {row.id} (missed)"
    assert ledger.record_slots(job_name="tick", slots=[], status="missed", message="none") == 0


def test_a_queued_run_is_claimed_in_its_row_once(ledger: Ledger) -> None:
    run_id = str(uuid.uuid4())
    queued = ledger.enqueue(run_id=run_id, job_name="report", trigger="manual", scheduled_for=None, params={"a": 1})
    assert (queued.status, queued.trigger, queued.params, queued.started_at) == ("queued", "manual", {"a": 1}, None)
    assert queued.enqueued_at is not None
    with pytest.raises(RunExists):
        ledger.enqueue(run_id=run_id, job_name="report", trigger="manual", scheduled_for=None, params={})
    row = ran(ledger, "report", None, run_id=run_id)
    assert (row.id, row.enqueued_at, row.created_at, row.params) == (
        run_id,
        queued.enqueued_at,
        queued.created_at,
        {"a": 1},
    )
    assert claim(ledger, "report", None, run_id=run_id).outcome == "duplicate"


def test_disabled_jobs_are_recorded_skipped(ledger: Ledger) -> None:
    result = claim(ledger, enabled=False)
    assert result.outcome == "skipped" and result.reason == "job is disabled" and result.record is not None
    row = result.record
    assert (row.status, row.message, row.started_at, row.lease_expires_at) == ("skipped", "job is disabled", None, None)
    assert row.finished_at is not None


def test_a_live_override_wins_for_scheduled_slots_and_an_expired_one_does_not(ledger: Ledger) -> None:
    ledger.set_enabled("cleanup", enabled=False, actor="ops", reason="maintenance")
    assert claim(ledger, use_override=True).outcome == "skipped"
    assert claim(ledger, slot=SLOT + timedelta(minutes=1)).outcome == "run"  # without use_override: the flag
    ledger.set_enabled("report", enabled=True, actor="ops")
    assert claim(ledger, "report", enabled=False, use_override=True).outcome == "run"
    ledger.set_enabled("digest", enabled=False, actor="ops", expires_at=PAST)
    assert claim(ledger, "digest", use_override=True).outcome == "run"


def test_overlap_skip_counts_another_workers_running_run(ledger: Ledger) -> None:
    first = ran(ledger)
    second = claim(ledger, slot=SLOT + timedelta(minutes=1), worker="host-b:2")
    assert second.outcome == "skipped" and second.reason == f"overlap: run {first.id} still running"
    assert claim(ledger, slot=SLOT + timedelta(minutes=2)).outcome == "run"  # its own process's runs do not count
    assert claim(ledger, slot=SLOT + timedelta(minutes=3), worker="host-c:3", overlap="allow").outcome == "run"


def test_overlap_counts_a_running_row_whose_lease_expired_until_it_is_reaped(ledger: Ledger) -> None:
    first = ran(ledger, lease_seconds=0.001)
    lease = first.lease_expires_at
    assert lease is not None
    eventually(lambda: datetime.now(UTC) > lease + timedelta(milliseconds=5))  # one host: one clock
    late = claim(ledger, slot=SLOT + timedelta(minutes=1), worker="host-b:2")
    assert late.outcome == "skipped" and late.reason is not None
    stamp = lease.strftime("%Y-%m-%dT%H:%M:%S.") + f"{lease.microsecond // 1000:03d}Z"
    assert late.reason == (
        f"overlap: run {first.id} still marked running (its lease expired at {stamp}"
        " and no reaper has marked it lost yet)"
    )
    assert [r.id for r in ledger.reap_lost()] == [first.id]
    assert claim(ledger, slot=SLOT + timedelta(minutes=2), worker="host-b:2").outcome == "run"


def test_outcomes_are_recorded_once_and_unknown_ids_left_out(ledger: Ledger) -> None:
    row = ran(ledger)
    outcome = RunOutcome(
        row.id, "failed", "broke\x00here", items_processed=3, items_failed=1, duration_ms=40, error="E"
    )
    (done,) = ledger.finish([outcome, RunOutcome(str(uuid.uuid4()), "succeeded", None)])
    assert (done.status, done.message, done.items_processed, done.items_failed, done.duration_ms, done.error) == (
        "failed",
        "broke\ufffdhere",
        3,
        1,
        40,
        "E",
    )
    assert done.lease_expires_at is None and done.finished_at is not None
    (unchanged,) = ledger.finish([RunOutcome(row.id, "succeeded", "late")])
    assert unchanged == done == ledger.get_run(row.id)
    assert ledger.finish([]) == []
    with pytest.raises(ValueError, match="cannot finish a run as 'lost'"):
        ledger.finish([RunOutcome(row.id, "lost", None)])  # type: ignore[arg-type]


def test_a_claim_records_the_outcomes_it_carries_first(ledger: Ledger) -> None:
    row = ran(ledger)
    carried = claim(ledger, "report", None, finishing=[RunOutcome(row.id, "succeeded", "done", elapsed_seconds=0.0)])
    assert carried.outcome == "run"
    (finished,) = carried.finished
    assert (finished.id, finished.status, finished.message) == (row.id, "succeeded", "done")
    assert finished.finished_at == row.started_at  # dated from the claim by the elapsed time


def test_leases_are_renewed_only_for_running_runs(ledger: Ledger) -> None:
    running = ran(ledger, lease_seconds=1.0)
    done = ran(ledger, slot=SLOT + timedelta(minutes=1), overlap="allow")
    ledger.finish([RunOutcome(done.id, "succeeded", None)])
    assert ledger.renew_leases([running.id, done.id, str(uuid.uuid4())], 120.0) == {running.id}
    renewed = ledger.get_run(running.id).lease_expires_at
    assert renewed is not None and running.lease_expires_at is not None
    assert renewed > running.lease_expires_at + timedelta(seconds=100)
    assert ledger.renew_leases([], 120.0) == set()


def test_expired_leases_are_reaped_lost_sparing_named_workers(ledger: Ledger) -> None:
    spared = ran(ledger, "a", lease_seconds=0.001, worker="host-s:1")
    gone = ran(ledger, "b", lease_seconds=0.001)
    live = ran(ledger, "c")
    eventually(lambda: [r.id for r in ledger.reap_lost(sparing=["host-s:1"])] == [gone.id])
    lost = ledger.get_run(gone.id)
    assert gone.lease_expires_at is not None and lost.message is not None
    assert lost.status == "lost" and lost.finished_at is not None
    assert lost.message.startswith("worker stopped heartbeating; lease expired at ") and lost.message.endswith("Z")
    assert ledger.get_run(spared.id).status == ledger.get_run(live.id).status == "running"
    (rested,) = ledger.finish([RunOutcome(gone.id, "succeeded", "rested")])
    assert rested.status == "succeeded"
    assert rested.message == f"rested [succeeded after it had been marked lost: {lost.message}]"


def test_queued_runs_past_the_deadline_are_lost_as_never_claimed(ledger: Ledger) -> None:
    run_id = str(uuid.uuid4())
    ledger.enqueue(run_id=run_id, job_name="report", trigger="startup", scheduled_for=None, params={})
    assert ledger.reap_lost(queued_deadline=3600) == []
    (lost,) = ledger.reap_lost(queued_deadline=0)
    assert (lost.id, lost.status) == (run_id, "lost")
    assert lost.message == "never claimed: no worker took the run within 0 s of its queueing (SP_QUEUED_DEADLINE)"
    late = claim(ledger, "report", None, run_id=run_id, trigger="startup")
    assert late.outcome == "duplicate" and late.reason == f"already claimed as run {run_id} (lost)"


def test_a_retried_claim_recognises_its_own_committed_attempt(ledger: Ledger) -> None:
    first = ran(ledger)
    assert claim(ledger).outcome == "duplicate"
    assert claim(ledger, worker="host-b:2", retrying=True).outcome == "duplicate"
    again = claim(ledger, retrying=True)
    assert again.outcome == "run" and again.record == first and again.reason is None


def test_history_is_newest_first_with_filters(ledger: Ledger) -> None:
    rows = [ran(ledger, "a" if i % 2 else "b", SLOT + timedelta(minutes=i), overlap="allow") for i in range(5)]
    ledger.finish([RunOutcome(rows[0].id, "failed", None)])
    assert [r.id for r in ledger.history()] == [r.id for r in reversed(rows)]
    assert [r.id for r in ledger.history(job="a")] == [rows[3].id, rows[1].id]
    assert [r.id for r in ledger.history(status="failed")] == [rows[0].id]
    assert [r.id for r in ledger.history(limit=2)] == [rows[4].id, rows[3].id]
    with pytest.raises(ValueError):
        ledger.history(limit=0)
    assert {n: r.id for n, r in ledger.last_runs().items()} == {"a": rows[3].id, "b": rows[4].id}
    assert {n: r.id for n, r in ledger.last_runs(["a", "zzz"]).items()} == {"a": rows[3].id}
    assert ledger.last_runs([]) == {}
    assert {n: r.id for n, r in ledger.last_with_status(["failed", "lost"]).items()} == {"b": rows[0].id}
    assert ledger.last_with_status(["running"], ["a"])["a"].id == rows[3].id
    assert ledger.last_with_status([]) == {}


def test_get_run_of_an_unknown_or_malformed_id(ledger: Ledger) -> None:
    with pytest.raises(UnknownRun):
        ledger.get_run(str(uuid.uuid4()))
    with pytest.raises(UnknownRun):
        ledger.get_run("not-a-run")


def test_overrides_set_replace_reset_and_their_trail(ledger: Ledger) -> None:
    first = ledger.set_enabled("report", enabled=False, actor="ann", reason="maintenance")
    assert (first.job_name, first.enabled, first.actor, first.reason, first.expires_at) == (
        "report",
        False,
        "ann",
        "maintenance",
        None,
    )
    later = datetime.now(UTC) + timedelta(hours=2)
    ledger.set_enabled("report", enabled=True, actor="bob", expires_at=later)
    assert {n: (o.enabled, o.actor, o.expires_at) for n, o in ledger.overrides().items()} == {
        "report": (True, "bob", later)
    }
    cleared = ledger.reset_override("report", actor="cat", reason="done")
    assert cleared is not None and cleared.actor == "bob"
    assert ledger.reset_override("report", actor="cat") is None
    assert ledger.overrides() == {}
    trail = ledger.override_changes("report")
    assert [(c.action, c.enabled, c.actor, c.reason) for c in trail] == [
        ("reset", None, "cat", "done"),
        ("enable", True, "bob", None),
        ("disable", False, "ann", "maintenance"),
    ]
    assert [c.action for c in ledger.override_changes("report", limit=1)] == ["reset"]


def test_expired_overrides_are_ignored_then_deleted_into_the_trail(ledger: Ledger) -> None:
    ledger.set_enabled("old", enabled=False, actor="ann", reason="window", expires_at=PAST)
    ledger.set_enabled("new", enabled=False, actor="bob")
    assert set(ledger.overrides()) == {"new"}
    (expired,) = ledger.expire_overrides()
    assert (expired.job_name, expired.expires_at) == ("old", PAST)
    assert ledger.expire_overrides() == []
    (_, entry) = ledger.override_changes("old")  # the expiry is dated at the expiry, before the disable
    assert (entry.action, entry.enabled, entry.actor, entry.reason, entry.at) == (
        "expire",
        False,
        "ann",
        "window",
        PAST,
    )
    assert ledger.reset_override("old", actor="cat") is None


def test_concurrent_deliveries_of_one_slot_run_it_once(ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        claims = list(pool.map(lambda n: claim(ledger, worker=f"host-{n}:1", overlap="allow"), range(8)))
    assert sorted(c.outcome for c in claims) == ["duplicate"] * 7 + ["run"]
    assert len(ledger.history(job="cleanup")) == 1


def test_a_disabled_queued_run_is_skipped_in_its_row(ledger: Ledger) -> None:
    run_id = str(uuid.uuid4())
    ledger.enqueue(run_id=run_id, job_name="report", trigger="startup", scheduled_for=None, params={})
    result = claim(ledger, "report", None, run_id=run_id, trigger="startup", enabled=False)
    assert result.outcome == "skipped" and result.record is not None
    assert (result.record.id, result.record.status, result.record.worker) == (run_id, "skipped", "host-a:1")
    (unchanged,) = ledger.finish([RunOutcome(run_id, "succeeded", None)])  # a final status stays
    assert unchanged.status == "skipped"


def test_a_queued_run_can_be_closed_failed_without_a_claim(ledger: Ledger) -> None:
    run_id = str(uuid.uuid4())
    ledger.enqueue(run_id=run_id, job_name="report", trigger="manual", scheduled_for=None, params={})
    (failed,) = ledger.finish([RunOutcome(run_id, "failed", "could not publish")])
    assert (failed.status, failed.message, failed.started_at) == ("failed", "could not publish", None)


def test_leases_of_lost_runs_are_not_renewed_and_live_ones_not_reaped(ledger: Ledger) -> None:
    gone = ran(ledger, "a", lease_seconds=0.001)
    live = ran(ledger, "b", lease_seconds=60)
    eventually(ledger.reap_lost)
    assert ledger.renew_leases([gone.id, live.id], 60) == {live.id}
    assert ledger.get_run(live.id).status == "running"


def test_malformed_input_is_refused_the_same_way(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="needs its slot"):
        ledger.claim(
            run_id=str(uuid.uuid4()),
            job_name="x",
            trigger="schedule",
            scheduled_for=None,
            params={},
            worker="w",
            lease_seconds=1,
            overlap="allow",
            enabled=True,
        )
    with pytest.raises(UnknownRun):
        claim(ledger, "x", None, run_id="not-a-uuid")
    with pytest.raises(UnknownRun):
        ledger.finish([RunOutcome("not-a-uuid", "succeeded", None)])
    with pytest.raises(LedgerRefused):
        ledger.enqueue(run_id="not-a-uuid", job_name="x", trigger="manual", scheduled_for=None, params={})
    assert ledger.history() == []
