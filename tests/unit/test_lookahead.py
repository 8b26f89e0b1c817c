"""The look-ahead beat wakes with: the floor for small bursts, proportional to the measured cost for large ones."""

from __future__ import annotations

import pytest

from sp_scheduler.lookahead import CEILING, FLOOR, MIN_MEASURED, SAFETY, Lookahead


def test_small_bursts_keep_the_floor() -> None:
    assert Lookahead(per_entry=50e-6).seconds(1) == FLOOR
    assert Lookahead(per_entry=50e-6).seconds(1000) == FLOOR  # 0.1 s at twice the cost: under the floor


def test_large_bursts_get_safety_times_their_cost_up_to_the_ceiling() -> None:
    assert Lookahead(per_entry=50e-6).seconds(10_000) == pytest.approx(SAFETY * 0.5)
    assert Lookahead(per_entry=1e-3).seconds(10_000) == CEILING


def test_the_estimate_follows_measurements_of_large_batches_only() -> None:
    estimate = Lookahead(per_entry=100e-6)
    estimate.observe(10, 1.0)  # a small batch: fixed costs, not per-entry ones
    assert estimate.per_entry == 100e-6
    for _ in range(30):
        estimate.observe(10_000, 0.2)  # 20 µs an entry, again and again
    assert estimate.per_entry == pytest.approx(20e-6, rel=0.01)
    estimate.observe(MIN_MEASURED, 1.0)
    assert estimate.per_entry > 20e-6  # one slow tick moves it at once
