"""The reaper gate: no reaping within one lease of a reaper's own (re)connection to Postgres."""

from __future__ import annotations

from sp_scheduler.reaping import ReaperGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_reaper_waits_one_lease_after_its_first_contact() -> None:
    clock = Clock()
    gate = ReaperGate(30.0, clock)
    assert not gate.may_reap()
    clock.now += 29.9
    assert not gate.may_reap()
    clock.now += 0.1
    assert gate.may_reap()
    assert gate.may_reap()


def test_an_outage_holds_the_reaper_back_for_a_lease_after_postgres_answers_again() -> None:
    clock = Clock()
    gate = ReaperGate(10.0, clock)
    gate.may_reap()
    clock.now += 10
    assert gate.may_reap()
    gate.unreachable()
    clock.now += 60  # however long Postgres was away, the lease counts from its return
    assert not gate.may_reap()
    clock.now += 9
    assert not gate.may_reap()
    clock.now += 1
    assert gate.may_reap()


def test_a_zero_lease_never_holds_back() -> None:
    gate = ReaperGate(0.0, Clock())
    assert gate.may_reap()
