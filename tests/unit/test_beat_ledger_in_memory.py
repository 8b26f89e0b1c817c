"""Beat's ledger thread on the in-memory ledger: work handed over is done, a refused item is skipped,
an unavailable ledger is waited out, and the caller never waits. No server needed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sp_scheduler.beat_ledger import BeatLedger, MissedSlots, StartupRun
from sp_scheduler.ledger.memory import InMemoryLedger
from sp_scheduler.store import slot_run_id
from tests.support import wait_until
from tests.support.flaky_ledger import FlakyLedger
from tests.support.manual_runs import claim_manual

SLOT = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@contextmanager
def running(ledger: object, **options: float) -> Iterator[BeatLedger]:
    beat = BeatLedger(ledger, reap_interval=options.pop("reap_interval", 60.0), refresh_interval=60.0, **options)  # type: ignore[arg-type]
    beat.start()
    try:
        yield beat
    finally:
        beat.stop(timeout=2)


def taken(beat: BeatLedger, into: list[StartupRun]) -> list[StartupRun]:
    into.extend(beat.take_queued())
    return into


def test_missed_slots_are_written_and_startup_runs_handed_back_once_queued() -> None:
    ledger = InMemoryLedger()
    with running(ledger) as beat:
        beat.record_missed(MissedSlots("tick", (SLOT, SLOT + timedelta(seconds=1)), "missed: beat was down"))
        run = StartupRun("warmup", str(uuid.uuid4()), {"days": 3})
        beat.queue_startup([run])
        handed: list[StartupRun] = []
        wait_until(lambda: taken(beat, handed) == [run], timeout=5)
        wait_until(lambda: len(ledger.history(job="tick")) == 2, timeout=5)
    assert {(r.id, r.status, r.message) for r in ledger.history(job="tick")} == {
        (slot_run_id("tick", SLOT), "missed", "missed: beat was down"),
        (slot_run_id("tick", SLOT + timedelta(seconds=1)), "missed", "missed: beat was down"),
    }
    queued = ledger.get_run(run.run_id)
    assert (queued.status, queued.trigger, queued.params) == ("queued", "startup", {"days": 3})


def test_overrides_are_read_on_request_and_dropped_at_their_expiry() -> None:
    ledger = InMemoryLedger()
    with running(ledger) as beat:
        beat.refresh_overrides(wait=5)
        first, overrides = beat.overrides()
        assert first > 0 and overrides == {}
        beat.refresh_overrides(wait=5)
        assert beat.overrides() == (first, {})  # unchanged: the version stays
        expires = datetime.now(UTC) + timedelta(hours=1)
        ledger.set_enabled("report", enabled=False, actor="ops", expires_at=expires)
        beat.refresh_overrides(wait=5)
        assert beat.overrides() == (first + 1, {"report": False})
        assert beat.overrides(now=expires) == (first + 2, {})


def test_a_refused_item_is_skipped_and_the_work_behind_it_done() -> None:
    inner = InMemoryLedger()
    ledger = FlakyLedger(inner)
    ledger.refuse = lambda name, args, kwargs: kwargs.get("job_name") in ("bad", "bad_startup")
    with running(ledger) as beat:
        beat.record_missed(MissedSlots("bad", (SLOT,), "missed"))
        beat.record_missed(MissedSlots("good", (SLOT,), "missed"))
        run = StartupRun("bad_startup", str(uuid.uuid4()))
        beat.queue_startup([run])
        handed: list[StartupRun] = []
        wait_until(lambda: taken(beat, handed) == [run], timeout=5)  # handed back all the same
        wait_until(lambda: inner.history(job="good"), timeout=5)
    assert inner.history(job="bad") == [] and inner.history(job="bad_startup") == []
    assert ledger.calls["record_slots"] == 2  # the refused one is not retried


def test_an_unavailable_ledger_is_waited_out_without_holding_up_the_caller() -> None:
    inner = InMemoryLedger()
    ledger = FlakyLedger(inner)
    ledger.down.set()
    with running(ledger) as beat:
        started = time.monotonic()
        beat.record_missed(MissedSlots("tick", (SLOT,), "missed"))
        beat.refresh_overrides(wait=0.2)
        assert time.monotonic() - started < 1.0
        wait_until(lambda: ledger.calls.get("overrides", 0) >= 2, timeout=5, message="retries")
        assert inner.history() == []
        ledger.down.clear()
        wait_until(lambda: inner.history(job="tick"), timeout=5)


def test_a_leading_beat_reaps_lost_runs_and_expired_overrides() -> None:
    ledger = InMemoryLedger()
    claim = claim_manual(ledger, "cleanup", worker="gone:1", lease_seconds=0.001)
    assert claim.record is not None
    ledger.set_enabled("report", enabled=False, actor="ops", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    with running(ledger, reap_interval=0.05, lease_seconds=0.0) as beat:
        beat.leading = True
        beat.refresh_overrides(wait=1)  # wakes the thread, which now leads
        wait_until(lambda: ledger.get_run(claim.record.id).status == "lost", timeout=5)  # type: ignore[union-attr]
    # the expiry is in the trail, dated at the expiry (before the disable that set it)
    assert [change.action for change in ledger.override_changes("report")] == ["disable", "expire"]
