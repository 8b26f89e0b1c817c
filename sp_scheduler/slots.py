"""Which slots are due, which were missed, and which one runs: beat's decisions, as pure functions.

Beat calls `plan_due(...)` with the schedule, the last slot it handled and the time now, and does
the I/O the returned plan describes. Time is always passed in, so every rule here is tested without
clocks or sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sp_scheduler.cron import CronExpression

# A slot this close to "now" is on time, whatever misfire_grace says: beat wakes a few ms late.
ON_TIME = timedelta(seconds=1)
# Without a per-job misfire_grace, the newest overdue slot runs while it is younger than one period
# (the gap to the slot after it), but never more than this late.
MISFIRE_GRACE_CAP = timedelta(days=1)
# Beyond this many overdue slots, only the newest ones are listed individually (a per-second job
# after a day of downtime would otherwise produce 86,400 rows in one go).
MAX_MISSED_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class DuePlan:
    """What to do with one entry at one tick."""

    run: datetime | None  # the slot to send now, if any
    missed: tuple[datetime, ...]  # slots to record as 'missed' (newest MAX_MISSED_ROWS of them)
    missed_total: int  # how many slots were missed in all
    last_slot: datetime  # what the entry remembers as handled after this tick
    next_due: datetime  # when the entry is next due

    @property
    def idle(self) -> bool:
        return self.run is None and not self.missed_total


def default_grace(slot: datetime, following: datetime) -> timedelta:
    """The grace of a job without `misfire_grace`: one period (slot to the next slot), capped at a day.

    A daily 03:00 job whose beat was down from 02:55 to 03:10 still runs at 03:10; a weekly job whose
    beat came back 26 hours after the slot does not (it is recorded missed).
    """
    return min(following - slot, MISFIRE_GRACE_CAP)


def plan_due(cron: CronExpression, last_slot: datetime, now: datetime, misfire_grace: float | None) -> DuePlan:
    """Slots in (last_slot, now]: the newest runs if on time or within the grace, the rest are missed.

    `misfire_grace` is the job's setting in seconds; None follows the period (`default_grace`).
    Never a burst: however many slots passed while no beat was running, at most one run is sent.
    """
    due: list[datetime] = []
    total = 0
    slot = cron.next_after(last_slot)
    while slot <= now:
        total += 1
        due.append(slot)
        if len(due) > MAX_MISSED_ROWS + 1:
            del due[0]
        slot = cron.next_after(slot)
    if not due:
        return DuePlan(None, (), 0, last_slot, slot)
    newest = due[-1]
    lateness = now - newest
    grace = default_grace(newest, slot) if misfire_grace is None else timedelta(seconds=misfire_grace)
    runs = lateness <= ON_TIME or lateness <= grace
    missed = tuple(due[:-1]) if runs else tuple(due[-MAX_MISSED_ROWS:])
    missed_total = total - 1 if runs else total
    return DuePlan(newest if runs else None, missed, missed_total, newest, slot)
