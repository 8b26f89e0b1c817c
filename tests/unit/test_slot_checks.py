"""Which received slots may run: none from the future beyond the skew allowance, none past their grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sp_scheduler.slot_checks import CLOCK_SKEW_ALLOWANCE, check_slot, worker_grace

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_a_slot_due_now_or_a_little_late_runs() -> None:
    assert check_slot(NOW, 60, NOW) is None
    assert check_slot(NOW - timedelta(seconds=59), 60, NOW) is None
    assert check_slot(NOW - timedelta(seconds=60), 60, NOW) is None


def test_a_slot_within_the_clock_skew_allowance_runs() -> None:
    assert check_slot(NOW + timedelta(seconds=CLOCK_SKEW_ALLOWANCE), 60, NOW) is None


def test_a_far_future_slot_is_refused_as_failed_and_says_why() -> None:
    verdict = check_slot(datetime(9999, 12, 31, tzinfo=UTC), 60, NOW)
    assert verdict is not None and verdict.status == "failed"
    assert verdict.message.startswith("refused: slot 9999-12-31T00:00:00+00:00 is ")
    assert f"beyond the {CLOCK_SKEW_ALLOWANCE:g} s allowed for clock skew; not run" in verdict.message
    just_beyond = check_slot(NOW + timedelta(seconds=CLOCK_SKEW_ALLOWANCE + 1), 60, NOW)
    assert just_beyond is not None and just_beyond.status == "failed"


def test_a_slot_past_its_misfire_grace_is_missed_not_skipped() -> None:
    verdict = check_slot(NOW - timedelta(seconds=33), 5, NOW)
    assert verdict is not None and verdict.status == "missed"
    assert verdict.message == (
        "missed: the slot was 33.0 s old when a worker received it, past the job's misfire_grace of 5 s; not run"
    )


def test_a_zero_grace_misses_any_late_slot() -> None:
    verdict = check_slot(NOW - timedelta(seconds=0.5), 0, NOW)
    assert verdict is not None and verdict.status == "missed"


def test_without_a_grace_any_past_slot_runs_and_the_future_is_still_refused() -> None:
    assert check_slot(NOW - timedelta(days=400), None, NOW) is None
    assert check_slot(NOW + timedelta(seconds=CLOCK_SKEW_ALLOWANCE), None, NOW) is None
    ahead = check_slot(NOW + timedelta(seconds=CLOCK_SKEW_ALLOWANCE + 1), None, NOW)
    assert ahead is not None and ahead.status == "failed"


def test_a_zero_grace_still_lets_a_slot_through_the_queue() -> None:
    # Every message spends some milliseconds in the broker: grace 0 must mean "not late", not "never".
    grace = worker_grace(0, NOW, None)
    assert grace == 1.0
    assert check_slot(NOW - timedelta(milliseconds=40), grace, NOW) is None
    verdict = check_slot(NOW - timedelta(seconds=1.5), grace, NOW)
    assert verdict is not None and verdict.status == "missed"


def test_an_explicit_grace_above_the_floor_is_kept_as_given() -> None:
    assert worker_grace(90, NOW, None) == 90
