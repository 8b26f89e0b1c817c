"""`jobs status` rules: a stale beat, recent workers, late jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sp_scheduler.catalog import Catalog, JobDefinition
from sp_scheduler.config import JobConfig
from sp_scheduler.cron import CronExpression
from sp_scheduler.status import beat_state, job_health, recent_workers
from tests.support.jobs import Noop

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def definition(name: str, schedule: str, enabled: bool = True) -> JobDefinition:
    entry = JobConfig(name=name, extension="testing", job="noop", schedule=schedule, enabled=enabled)
    return JobDefinition(name, "testing", Noop(), entry, CronExpression.parse(schedule) if schedule else None)


def test_a_job_is_late_after_twice_its_period_without_success() -> None:
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
