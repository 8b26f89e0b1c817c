"""Beat's pure decisions: which slots run, which are missed, when the entry is next due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sp_scheduler.beat import EntrySpec, desired_entries
from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.config import JobConfig
from sp_scheduler.cron import CronExpression
from sp_scheduler.schedule import CronSchedule, ScheduleDecoder, ScheduleEncoder, UndecodableSchedule
from sp_scheduler.slots import MAX_MISSED_ROWS, MISFIRE_GRACE_CAP, default_grace, plan_due
from tests.support.jobs import Noop

EVERY_SECOND = CronExpression.parse("* * * * * *")
EVERY_MINUTE = CronExpression.parse("0 * * * * *")
T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_nothing_due_yet() -> None:
    plan = plan_due(EVERY_MINUTE, T0, T0 + timedelta(seconds=30), misfire_grace=300)
    assert plan.idle and plan.last_slot == T0 and plan.next_due == T0 + timedelta(minutes=1)


def test_one_slot_due_runs_on_time() -> None:
    plan = plan_due(EVERY_MINUTE, T0, T0 + timedelta(minutes=1, milliseconds=7), misfire_grace=0)
    assert plan.run == T0 + timedelta(minutes=1)
    assert plan.missed == () and plan.missed_total == 0
    assert plan.next_due == T0 + timedelta(minutes=2)


def test_slot_just_late_by_less_than_a_second_runs_even_with_zero_grace() -> None:
    plan = plan_due(EVERY_MINUTE, T0, T0 + timedelta(minutes=1, milliseconds=900), misfire_grace=0)
    assert plan.run == T0 + timedelta(minutes=1)


def test_downtime_records_every_missed_slot_and_runs_only_the_newest() -> None:
    now = T0 + timedelta(seconds=10, milliseconds=200)
    plan = plan_due(EVERY_SECOND, T0, now, misfire_grace=300)
    assert plan.run == T0 + timedelta(seconds=10)
    assert plan.missed == tuple(T0 + timedelta(seconds=s) for s in range(1, 10))
    assert plan.missed_total == 9
    assert plan.last_slot == T0 + timedelta(seconds=10) and plan.next_due == T0 + timedelta(seconds=11)


def test_newest_slot_past_the_grace_is_missed_too() -> None:
    now = T0 + timedelta(minutes=3, seconds=30)
    plan = plan_due(EVERY_MINUTE, T0, now, misfire_grace=10)
    assert plan.run is None
    assert plan.missed == tuple(T0 + timedelta(minutes=m) for m in (1, 2, 3)) and plan.missed_total == 3
    assert plan.next_due == T0 + timedelta(minutes=4)


DAILY_3AM = CronExpression.parse("0 0 3 * * *")
YESTERDAY_3AM = datetime(2026, 4, 30, 3, 0, 0, tzinfo=UTC)


def test_a_daily_slot_in_a_15_minute_outage_runs_when_beat_returns() -> None:
    # Beat was down from 02:55 to 03:10: the 03:00 slot runs at 03:10, ten minutes late.
    plan = plan_due(DAILY_3AM, YESTERDAY_3AM, datetime(2026, 5, 1, 3, 10, tzinfo=UTC), misfire_grace=None)
    assert plan.run == datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    assert plan.missed_total == 0 and plan.next_due == datetime(2026, 5, 2, 3, 0, tzinfo=UTC)


def test_a_daily_slot_still_runs_23_hours_late_and_older_ones_are_missed() -> None:
    # Beat last handled 04-28 03:00 and came back 05-01 02:00: 04-29 is missed, 04-30 runs 23 h late.
    last = datetime(2026, 4, 28, 3, 0, tzinfo=UTC)
    plan = plan_due(DAILY_3AM, last, datetime(2026, 5, 1, 2, 0, tzinfo=UTC), misfire_grace=None)
    assert plan.run == datetime(2026, 4, 30, 3, 0, tzinfo=UTC)
    assert plan.missed == (datetime(2026, 4, 29, 3, 0, tzinfo=UTC),) and plan.missed_total == 1


def test_the_default_grace_is_one_period_capped_at_a_day() -> None:
    hourly = CronExpression.parse("0 0 * * * *")
    plan = plan_due(hourly, T0, T0 + timedelta(hours=2, minutes=59), misfire_grace=None)
    assert plan.run == T0 + timedelta(hours=2) and plan.missed == (T0 + timedelta(hours=1),)
    weekly = CronExpression.parse("0 0 3 * * MON")  # 2026-05-04 is a Monday
    monday = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)
    late = plan_due(weekly, monday - timedelta(days=7), monday + timedelta(hours=26), misfire_grace=None)
    assert late.run is None and late.missed == (monday,)  # 26 h late is past the one-day cap
    soon = plan_due(weekly, monday - timedelta(days=7), monday + timedelta(hours=23), misfire_grace=None)
    assert soon.run == monday
    assert default_grace(monday, monday + timedelta(days=7)) == MISFIRE_GRACE_CAP
    assert default_grace(T0, T0 + timedelta(minutes=15)) == timedelta(minutes=15)


def test_an_explicit_misfire_grace_still_overrides_the_period() -> None:
    now = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)
    assert plan_due(DAILY_3AM, YESTERDAY_3AM, now, misfire_grace=300).run is None
    assert plan_due(DAILY_3AM, YESTERDAY_3AM, now, misfire_grace=3600).run == datetime(2026, 5, 1, 3, tzinfo=UTC)


def test_long_outages_list_only_the_newest_missed_rows() -> None:
    now = T0 + timedelta(seconds=MAX_MISSED_ROWS + 500)
    plan = plan_due(EVERY_SECOND, T0, now, misfire_grace=300)
    assert plan.run == now
    assert len(plan.missed) == MAX_MISSED_ROWS and plan.missed_total == MAX_MISSED_ROWS + 499
    assert plan.missed[-1] == now - timedelta(seconds=1)


def test_cron_schedule_round_trips_through_redbeat_json() -> None:
    body = {"schedule": CronSchedule("0 */15 * * * *", "Europe/Berlin"), "last_run_at": T0}
    decoded = json.loads(json.dumps(body, cls=ScheduleEncoder), cls=ScheduleDecoder)
    assert decoded["schedule"] == CronSchedule("0 */15 * * * *", "Europe/Berlin")
    assert decoded["last_run_at"] == T0


def test_an_undecodable_schedule_does_not_raise() -> None:
    raw = '{"schedule": {"__type__": "sp_cron", "expression": "0 * * * *", "timezone": "UTC"}}'
    decoded = json.loads(raw, cls=ScheduleDecoder)["schedule"]
    assert isinstance(decoded, UndecodableSchedule) and "5 fields given" in decoded.reason


def test_cron_schedule_is_a_celery_schedule() -> None:
    schedule = CronSchedule("* * * * * *")
    due, next_in = schedule.is_due(datetime.now(UTC) - timedelta(seconds=5))
    assert due and 0 <= next_in <= 1


def _definition(name: str, schedule: str, enabled: bool = True) -> JobDefinition:
    entry = JobConfig(name=name, extension="testing", job="noop", schedule=schedule, enabled=enabled)
    return JobDefinition(name, "testing", Noop(), entry, CronExpression.parse(schedule) if schedule else None)


def test_desired_entries_follow_yaml_overrides_and_the_scheduler_switch() -> None:
    catalog = Catalog(
        True,
        (
            _definition("on", "* * * * * *"),
            _definition("off", "* * * * * *", enabled=False),
            _definition("manual", ""),
            _definition("overridden_off", "0 0 * * * *"),
        ),
    )
    desired = desired_entries(catalog, {"off": True, "overridden_off": False})
    assert set(desired) == {"on", "off"}
    assert desired["on"] == EntrySpec("on", "* * * * * *", "UTC", "sp_scheduler", None, None)
    assert desired_entries(Catalog(False, catalog.definitions), {}) == {}


def test_entry_definitions_are_deterministic() -> None:
    spec = EntrySpec("a", "0 0 * * * *", "UTC", "q", 30.0, 60.0)
    assert spec.definition() == EntrySpec("a", "0 0 * * * *", "UTC", "q", 30.0, 60.0).definition()
    assert spec.definition() != EntrySpec("a", "0 0 * * * *", "UTC", "q", 31.0, 60.0).definition()
