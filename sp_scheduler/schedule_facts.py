"""A job's lateness facts at an instant (expected slot, period, grace, next run), cached until they change.

`jobs status`, the dashboard's jobs page, the notifier's late rule and the metrics ask every job for
the newest slot whose success is due by now: two `prev_before` and two `next_after` each, about a
second of CPU per request for 1,000 jobs on a busy machine. The answer only changes when a slot
passes, once per period, so each one is kept with the span of instants it holds for and reused until
the clock leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sp_scheduler.cron import CronExpression

# A job is late when the newest slot older than its late grace has no success since. The grace is
# the job's timeout when it has one, else one period capped at LATE_GRACE_CAP, never below
# LATE_GRACE_FLOOR (beat lag, queueing and the run itself must fit in it).
LATE_GRACE_FLOOR = 60.0
LATE_GRACE_CAP = 3600.0
CACHED_FACTS = 20_000  # entries kept (one per distinct schedule and timeout); the cache starts over beyond


def late_grace(period: float, timeout: float | None) -> float:
    """How long after a slot its success may come before the job counts as late."""
    return max(LATE_GRACE_FLOOR, timeout if timeout else min(period, LATE_GRACE_CAP))


@dataclass(frozen=True, slots=True)
class ScheduleFacts:
    """What the lateness rule needs of a schedule, true for every instant in [valid_from, valid_until)."""

    slot: datetime  # the newest slot whose success is due
    period: float  # seconds from the last slot before now to the one after it
    grace: float
    next_run: datetime
    valid_from: datetime
    valid_until: datetime


_cache: dict[tuple[CronExpression, float | None], ScheduleFacts] = {}


def schedule_facts(cron: CronExpression, timeout: float | None, now: datetime) -> ScheduleFacts:
    """The facts at `now`, from the cache when `now` lies in the span they were computed for.

    The period is the real gap between the last slot before `now` and the one after it, so a weekday
    job's period on a weekend is the weekend: `0 0 9 * * MON-FRI` on Sunday expects Friday's run.
    They hold while the last slot before now stays the same (until the next slot) and while
    `now - grace` stays before the slot after the expected one.
    """
    key = (cron, timeout)
    cached = _cache.get(key)
    if cached is not None and cached.valid_from <= now < cached.valid_until:
        return cached
    latest = cron.prev_before(now)
    following = cron.next_after(latest)
    period = (following - latest).total_seconds()
    grace = late_grace(period, timeout)
    slot = cron.prev_before(now - timedelta(seconds=grace))
    until = min(following, cron.next_after(slot) + timedelta(seconds=grace))
    next_run = following if following > now else cron.next_after(now)
    facts = ScheduleFacts(slot, period, grace, next_run, now, until)
    if len(_cache) >= CACHED_FACTS:
        _cache.clear()
    _cache[key] = facts
    return facts
