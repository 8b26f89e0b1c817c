"""The lateness facts served from the cache equal the ones worked out afresh, at every instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sp_scheduler import schedule_facts as module
from sp_scheduler.cron import CronExpression
from sp_scheduler.schedule_facts import ScheduleFacts, schedule_facts

START = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)  # across the last Sunday of March: Europe's DST change


def fresh(cron: CronExpression, timeout: float | None, now: datetime) -> tuple[datetime, float, float, datetime]:
    module._cache.clear()
    return facts_of(schedule_facts(cron, timeout, now))


def facts_of(facts: ScheduleFacts) -> tuple[datetime, float, float, datetime]:
    return facts.slot, facts.period, facts.grace, facts.next_run


@pytest.mark.parametrize(
    ("expression", "zone", "timeout"),
    [
        ("0 */15 * * * *", "UTC", None),
        ("0 30 2 * * *", "Europe/Berlin", None),  # the 02:30 that does not exist on the DST day
        ("0 0 9 * * MON-FRI", "Europe/Berlin", 600.0),
        ("*/20 * * * * *", "UTC", None),
        ("0 0 0 L * *", "America/New_York", None),
    ],
)
@pytest.mark.parametrize("direction", [1, -1], ids=["forward", "backward"])
def test_cached_facts_equal_fresh_ones_at_every_instant(
    expression: str, zone: str, timeout: float | None, direction: int
) -> None:
    cron = CronExpression.parse(expression, zone)
    step = timedelta(minutes=7, seconds=13)
    instants = [START + k * step for k in range(1200)]  # about six days
    if direction < 0:
        instants.reverse()
    module._cache.clear()
    served = [facts_of(schedule_facts(cron, timeout, now)) for now in instants]
    assert served == [fresh(cron, timeout, now) for now in instants]


def test_a_hit_is_the_cached_object_until_the_next_slot() -> None:
    cron = CronExpression.parse("0 0 * * * *")
    module._cache.clear()
    first = schedule_facts(cron, None, datetime(2026, 1, 1, 10, 20, tzinfo=UTC))
    assert schedule_facts(cron, None, datetime(2026, 1, 1, 10, 59, 59, tzinfo=UTC)) is first
    later = schedule_facts(cron, None, datetime(2026, 1, 1, 11, 0, 1, tzinfo=UTC))
    assert later is not first and later.next_run == datetime(2026, 1, 1, 12, tzinfo=UTC)
