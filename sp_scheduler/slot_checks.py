"""Whether a slot a worker receives may still run: not from the future, not past its grace.

A message naming a slot far ahead of the worker's clock is no slot beat sent on time (a hand-made or
corrupted message, or a host whose clock is badly wrong): it is refused and recorded `failed`, rather
than run at once. A slot older than the job's misfire grace when a worker finally gets it (the
workers were down or backed up) is recorded `missed`: running it that late would be a burst of stale
work, and calling it `skipped` would blame an overlap that did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sp_scheduler.slots import MISFIRE_GRACE_CAP, ON_TIME, default_grace

if TYPE_CHECKING:
    from sp_scheduler.cron import CronExpression

# How far ahead of this worker's clock a slot may be: beat and workers keep time with NTP, so a few
# seconds cover any honest skew; more means the slot is not one beat sent at its time.
CLOCK_SKEW_ALLOWANCE = 30.0
# A job without `misfire_grace` follows its period, but a message also spends time in the queue: a
# per-second job whose slot reaches a busy worker 2 s late still runs rather than being called missed.
DELIVERY_ALLOWANCE = 5.0


def worker_grace(misfire_grace: float | None, slot: datetime, cron: CronExpression | None) -> float:
    """Seconds a slot may be old when a worker receives it: the job's `misfire_grace` (but at least
    ON_TIME, as beat judges it: `misfire_grace: 0` means "never late", not "never", since every message
    spends some milliseconds in the queue), or else one period capped at a day (slots.default_grace),
    never below DELIVERY_ALLOWANCE."""
    if misfire_grace is not None:
        return max(misfire_grace, ON_TIME.total_seconds())
    period = default_grace(slot, cron.next_after(slot)) if cron is not None else MISFIRE_GRACE_CAP
    return max(period.total_seconds(), DELIVERY_ALLOWANCE)


@dataclass(frozen=True, slots=True)
class SlotVerdict:
    """A slot that will not run: the row to record instead, and why."""

    status: Literal["failed", "missed"]
    message: str


def check_slot(scheduled_for: datetime, misfire_grace: float | None, now: datetime) -> SlotVerdict | None:
    """None when the slot may run now; otherwise what to record. `now` is the worker's clock (UTC).

    `misfire_grace` None means no age limit: a backfill run is late on purpose (an operator asked for
    that past slot), so only the check against the future applies to it.
    """
    ahead = (scheduled_for - now).total_seconds()
    if ahead > CLOCK_SKEW_ALLOWANCE:
        return SlotVerdict(
            "failed",
            f"refused: slot {scheduled_for.isoformat()} is {ahead:.0f} s ahead of the worker's clock,"
            f" beyond the {CLOCK_SKEW_ALLOWANCE:g} s allowed for clock skew; not run",
        )
    late = -ahead
    if misfire_grace is not None and late > misfire_grace:
        return SlotVerdict(
            "missed",
            f"missed: the slot was {late:.1f} s old when a worker received it, past the job's"
            f" misfire_grace of {misfire_grace:g} s; not run",
        )
    return None
