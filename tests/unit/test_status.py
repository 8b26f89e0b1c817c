"""`jobs status` rules: a stale beat, recent workers, late jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.config import JobConfig
from sp_scheduler.cron import CronExpression
from sp_scheduler.status import BeatState, CheckCode, beat_state, check_code, job_health, recent_workers
from tests.support.jobs import Noop

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def definition(name: str, schedule: str, enabled: bool = True, timeout: float | None = None) -> JobDefinition:
    entry = JobConfig(name=name, extension="testing", job="noop", schedule=schedule, enabled=enabled, timeout=timeout)
    return JobDefinition(name, "testing", Noop(), entry, CronExpression.parse(schedule) if schedule else None)


def test_an_hourly_job_is_late_when_the_slot_an_hour_ago_has_no_success() -> None:
    catalog = Catalog(True, (definition("hourly", "0 0 * * * *"), definition("fresh", "0 0 * * * *")))
    health = {
        h.name: h
        for h in job_health(
            catalog,
            {},
            {"hourly": NOW - timedelta(hours=2, seconds=1), "fresh": NOW - timedelta(hours=1, minutes=59)},
            {},
            NOW,
        )
    }
    assert health["hourly"].late and not health["fresh"].late
    assert health["hourly"].period_seconds == 3600
    assert health["hourly"].next_run == NOW + timedelta(hours=1)


# 2026-12-04 is a Friday.
FRIDAY_RUN = datetime(2026, 12, 4, 9, 0, 4, tzinfo=UTC)
WEEKDAYS = "0 0 9 * * MON-FRI"


def weekday_health(now: datetime, success: datetime = FRIDAY_RUN) -> bool:
    catalog = Catalog(True, (definition("weekday", WEEKDAYS),))
    (health,) = job_health(catalog, {}, {"weekday": success}, {}, now)
    return health.late


def test_a_weekday_job_that_ran_on_friday_is_not_late_on_the_weekend() -> None:
    assert not weekday_health(datetime(2026, 12, 5, 12, tzinfo=UTC))  # Saturday
    assert not weekday_health(datetime(2026, 12, 6, 12, tzinfo=UTC))  # Sunday
    catalog = Catalog(True, (definition("weekday", WEEKDAYS),))
    (sunday,) = job_health(catalog, {}, {"weekday": FRIDAY_RUN}, {}, datetime(2026, 12, 6, 12, tzinfo=UTC))
    assert sunday.expected_slot == datetime(2026, 12, 4, 9, tzinfo=UTC)
    assert sunday.period_seconds == 3 * 86400  # Friday 09:00 to Monday 09:00


def test_a_weekday_job_that_last_ran_on_friday_is_late_on_tuesday() -> None:
    assert weekday_health(datetime(2026, 12, 8, 12, tzinfo=UTC))  # Tuesday noon
    assert weekday_health(datetime(2026, 12, 7, 12, tzinfo=UTC))  # Monday's run is missing by noon too
    assert not weekday_health(datetime(2026, 12, 7, 9, 30, tzinfo=UTC))  # Monday 09:30: still within the grace
    assert not weekday_health(datetime(2026, 12, 8, 12, tzinfo=UTC), datetime(2026, 12, 8, 9, 0, 2, tzinfo=UTC))


def test_a_daily_job_gets_an_hour_or_its_timeout_to_succeed() -> None:
    daily = definition("daily", "0 0 3 * * *")
    slow = definition("slow", "0 0 3 * * *", timeout=4 * 3600)
    yesterday = datetime(2026, 5, 1, 3, 0, 5, tzinfo=UTC) - timedelta(days=1)
    for now, late in (
        (datetime(2026, 5, 1, 3, 59, tzinfo=UTC), (False, False)),
        (datetime(2026, 5, 1, 5, tzinfo=UTC), (True, False)),
        (NOW, (True, True)),
    ):
        health = job_health(Catalog(True, (daily, slow)), {}, {"daily": yesterday, "slow": yesterday}, {}, now)
        assert tuple(h.late for h in health) == late
    (fast,) = job_health(Catalog(True, (definition("tick", "* * * * * *"),)), {}, {}, {}, NOW)
    assert fast.late_grace_seconds == 60  # never below a minute, however frequent


def test_never_succeeded_is_late_only_once_it_has_failed() -> None:
    catalog = Catalog(True, (definition("failing", "* * * * * *"), definition("new", "* * * * * *")))
    health = {h.name: h for h in job_health(catalog, {}, {}, {"failing": NOW}, NOW)}
    assert health["failing"].late and not health["new"].late


def test_disabled_and_manual_jobs_are_never_late() -> None:
    catalog = Catalog(
        True,
        (definition("off", "* * * * * *", enabled=False), definition("manual", ""), definition("ovr", "* * * * * *")),
    )
    health = {h.name: h for h in job_health(catalog, {"ovr": False}, {}, {"off": NOW, "ovr": NOW}, NOW)}
    assert not any(h.late for h in health.values())
    assert health["ovr"].enabled is False and health["ovr"].next_run is None


def test_beat_state_from_redis_facts() -> None:
    leader = {"id": "host:1:abc", "last_tick": str((NOW - timedelta(seconds=2)).timestamp())}
    state = beat_state(leader, [("host:1:abc", NOW.timestamp() - 2), ("host:2:def", NOW.timestamp() - 100)], NOW)
    assert state.leader == "host:1:abc" and state.healthy and state.instances == ("host:1:abc",)
    assert state.lag_seconds is not None and abs(state.lag_seconds - 2) < 0.01
    stale = beat_state({"id": "x", "last_tick": str(NOW.timestamp() - 60)}, [], NOW)
    assert not stale.healthy
    assert not beat_state({}, [], NOW).healthy


def test_recent_workers_forget_old_ones() -> None:
    assert recent_workers([("a@h", NOW.timestamp() - 5), ("b@h", NOW.timestamp() - 600)], NOW) == ["a@h"]


def test_check_code_names_the_most_severe_problem() -> None:
    catalog = Catalog(True, (definition("failing", "* * * * * *"),))
    late = job_health(catalog, {}, {}, {"failing": NOW}, NOW)
    fine = job_health(catalog, {}, {"failing": NOW}, {}, NOW)
    leading = BeatState("b", NOW, 0.5, ("b",))
    assert check_code(leading, ["w@h"], fine) == CheckCode.OK
    assert check_code(leading, ["w@h"], late) == CheckCode.LATE
    assert check_code(leading, [], late) == CheckCode.NO_WORKER
    assert check_code(BeatState(None, None, None, ()), [], late) == CheckCode.NO_BEAT
    assert len({int(code) for code in CheckCode}) == 4
