"""Beat fires every enabled job at its cron slots, once per slot, across edits, failovers and outages."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis

from sp_scheduler import keys
from sp_scheduler.embedded import embedded_redis
from tests.integration.conftest import System
from tests.support import free_port, wait_until
from tests.support.processes import start_process
from tests.support.proxy import postgres_proxy, redis_proxy, through

pytestmark = pytest.mark.integration


def job(name: str, schedule: str, job_name: str = "noop", **options: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job_name, "schedule": schedule, "enabled": True, **options}


def slots(rows: list[dict[str, Any]], status: str | None = None) -> list[datetime]:
    return sorted(
        datetime.fromisoformat(r["scheduled_for"])
        for r in rows
        if r["trigger"] == "schedule" and (status is None or r["status"] == status)
    )


def synced_line(output: str, change: str) -> bool:
    """Beat logged a sync summary naming this change (e.g. `removed_jobs=doomed`)."""
    return any("schedule synced" in line and change in line.split() for line in output.splitlines())


def test_a_per_second_job_runs_every_second_on_time(system: System) -> None:
    system.configure([job("tick", "* * * * * *", overlap="allow")])
    system.worker(concurrency=2)
    system.beat()
    wait_until(lambda: len(slots(system.history("tick"), "succeeded")) >= 12, timeout=30)
    rows = [r for r in system.history("tick") if r["trigger"] == "schedule"]
    ran = slots(rows, "succeeded")
    window = ran[1:11]  # ten consecutive seconds, after the first (beat may start mid-second)
    assert all(slot.microsecond == 0 for slot in ran)
    assert [b - a for a, b in pairwise(window)] == [timedelta(seconds=1)] * 9
    assert {r["status"] for r in rows if datetime.fromisoformat(r["scheduled_for"]) in window} == {"succeeded"}
    lateness = sorted(r["lateness_ms"] for r in rows if r["status"] == "succeeded")
    p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))]
    assert p99 < 250, f"p99 lateness {p99} ms (all: {lateness})"


def test_startup_jobs_run_once_when_beat_takes_the_lead(system: System) -> None:
    system.configure(
        [
            job("startup_marker", "0 0 0 1 1 *", job_name="startup_marker"),
            {**job("startup_off", "0 0 0 1 1 *", job_name="startup_marker"), "enabled": False},
            job("no_startup", "0 0 0 1 1 *"),
        ]
    )
    system.worker()
    system.beat()
    wait_until(lambda: [r["status"] for r in system.history("startup_marker")] == ["succeeded"], timeout=30)
    (row,) = system.history("startup_marker")
    assert row["trigger"] == "startup"
    assert system.history("startup_off") == [] and system.history("no_startup") == []


def test_yaml_edits_take_effect_without_a_restart(system: System) -> None:
    system.configure([job("every_second", "* * * * * *", overlap="allow"), job("doomed", "* * * * * *")])
    system.worker(concurrency=2)
    beat = system.beat()
    wait_until(lambda: len(slots(system.history("doomed"), "succeeded")) >= 2, timeout=30)
    # Change a schedule, add a job, remove a job.
    system.configure([job("every_second", "*/2 * * * * *", overlap="allow"), job("newcomer", "* * * * * *")])
    wait_until(lambda: synced_line(beat.output(), "removed_jobs=doomed"), timeout=15)
    changed_at = datetime.now().astimezone()
    wait_until(lambda: len(slots(system.history("newcomer"), "succeeded")) >= 3, timeout=30)
    doomed_last = max(slots(system.history("doomed")))
    wait_until(lambda: len([s for s in slots(system.history("every_second")) if s > changed_at]) >= 3, timeout=30)
    evens = [s for s in slots(system.history("every_second")) if s > changed_at + timedelta(seconds=1)]
    assert evens and all(s.second % 2 == 0 for s in evens)
    # The removed job stops firing: nothing after its removal showed up while the newcomer ran.
    assert doomed_last <= changed_at + timedelta(seconds=1)
    assert max(slots(system.history("doomed"))) == doomed_last


def test_a_bad_edit_keeps_the_last_good_schedule(system: System) -> None:
    system.configure([job("steady", "* * * * * *", overlap="allow")])
    system.worker()
    beat = system.beat()
    wait_until(lambda: len(slots(system.history("steady"), "succeeded")) >= 1, timeout=30)
    system.config.write_text(system.config.read_text().replace("* * * * * *", "* * * * *"))
    wait_until(lambda: "keeping the last good config" in beat.output(), timeout=15)
    assert "5 fields given" in beat.output()
    count = len(slots(system.history("steady")))
    wait_until(lambda: len(slots(system.history("steady"))) >= count + 2, timeout=15)
    assert beat.popen.poll() is None


def test_disable_and_enable_apply_to_the_live_schedule(system: System) -> None:
    system.configure([job("toggled", "* * * * * *", overlap="allow")])
    system.worker()
    beat = system.beat()
    wait_until(lambda: len(slots(system.history("toggled"), "succeeded")) >= 1, timeout=30)
    assert system.cli("jobs", "disable", "toggled", "--reason", "maintenance").exit_code == 0
    wait_until(lambda: synced_line(beat.output(), "removed_jobs=toggled"), timeout=10)
    settled = len(slots(system.history("toggled")))
    # Give beat a few ticks to prove nothing fires: poll that the count stays put for 3 s.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert len(slots(system.history("toggled"))) <= settled + 1  # one slot may have been in flight
        time.sleep(0.5)
    assert system.cli("jobs", "enable", "toggled").exit_code == 0
    before = len(slots(system.history("toggled")))
    wait_until(lambda: len(slots(system.history("toggled"), "succeeded")) >= before + 2, timeout=15)


def test_a_manual_run_does_not_move_the_schedule(system: System) -> None:
    system.configure([job("every5", "*/5 * * * * *", job_name="echo_params", overlap="allow")])
    system.worker(concurrency=2)
    system.beat()
    wait_until(lambda: len(slots(system.history("every5"))) >= 1, timeout=30)
    manual = system.cli("jobs", "run", "every5", "--wait", "--timeout", "30")
    assert manual.exit_code == 0, manual.output
    wait_until(lambda: len(slots(system.history("every5"))) >= 3, timeout=30)
    scheduled = slots(system.history("every5"))
    assert all(s.second % 5 == 0 for s in scheduled)
    assert [b - a for a, b in pairwise(scheduled)] == [timedelta(seconds=5)] * (len(scheduled) - 1)
    assert [r["trigger"] for r in system.history("every5")].count("manual") == 1


def test_downtime_records_missed_slots_and_runs_once(system: System) -> None:
    system.configure([job("catchup", "* * * * * *", overlap="allow")])
    system.worker()
    beat = system.beat()
    wait_until(lambda: len(slots(system.history("catchup"), "succeeded")) >= 2, timeout=30)
    beat.kill_tree()
    down_at = datetime.now().astimezone()
    wait_until(lambda: datetime.now().astimezone() >= down_at + timedelta(seconds=4), timeout=10)
    system.beat("beat2")

    def missed_slots() -> list[datetime]:
        found = slots(system.history("catchup"), "missed")
        return found if len(found) >= 3 else []

    missed = wait_until(missed_slots, timeout=30)
    catch_up_slot = missed[-1] + timedelta(seconds=1)  # the newest overdue slot, sent as the catch-up
    # Missed rows are written while the tick plans; the catch-up run finishes on the worker after that.
    wait_until(lambda: catch_up_slot in slots(system.history("catchup"), "succeeded"), timeout=30)
    rows = system.history("catchup")
    assert all("no beat was running" in r["message"] for r in rows if r["status"] == "missed")
    # Exactly one run among the slots the restarted beat found overdue: the newest, as the catch-up.
    catch_up = [s for s in slots(rows, "succeeded") if missed[0] < s <= catch_up_slot]
    assert catch_up == [catch_up_slot]


def test_two_beats_one_leader_failover_and_no_slot_twice(system: System) -> None:
    system.configure([job("ha", "* * * * * *", overlap="allow")])
    system.worker("w1", concurrency=2)
    system.worker("w2", concurrency=2)
    leader = system.beat("beat_a")
    standby = system.beat("beat_b", lead=False)
    wait_until(lambda: len(slots(system.history("ha"), "succeeded")) >= 20, timeout=60)
    assert "beat took the lead" not in standby.output()
    leader.kill_tree()
    killed_at = time.monotonic()
    wait_until(lambda: "beat took the lead" in standby.output(), timeout=20)
    takeover = time.monotonic() - killed_at
    assert takeover <= 15, f"standby took {takeover:.1f} s to take over"
    wait_until(lambda: len(slots(system.history("ha"))) >= 60, timeout=90)  # a 60 s window of slots
    rows = [r for r in system.history("ha") if r["trigger"] == "schedule"]
    all_slots = slots(rows)
    assert len(all_slots) == len(set(all_slots))  # no slot twice (the ledger would refuse it anyway)
    first, last = all_slots[0], all_slots[-1]
    assert len(all_slots) == int((last - first).total_seconds()) + 1  # and none absent
    missed = slots(rows, "missed")
    assert missed, "the failover gap left no missed slots"
    gap_end = missed[-1] + timedelta(seconds=1)
    assert next(r for r in rows if datetime.fromisoformat(r["scheduled_for"]) == gap_end)["status"] == "succeeded"
    settled = [r for r in rows if datetime.fromisoformat(r["scheduled_for"]) <= last - timedelta(seconds=2)]
    assert {r["status"] for r in settled} <= {"succeeded", "missed"}  # the newest slots may still be running


def test_beat_and_worker_survive_a_redis_restart(system: System, tmp_path: Path) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    with embedded_redis(tmp_path, port):  # a private server on a fixed port, so it can come back there
        system.configure([job("resilient", "* * * * * *", overlap="allow")])
        system.worker(SP_REDIS_URL=redis_url)
        beat = system.beat(SP_REDIS_URL=redis_url)
        wait_until(lambda: len(slots(system.history("resilient"), "succeeded")) >= 2, timeout=30)
    wait_until(lambda: "Redis unreachable" in beat.output(), timeout=10)
    with embedded_redis(tmp_path, port):
        restarted_at = datetime.now().astimezone()
        wait_until(
            lambda: len([s for s in slots(system.history("resilient"), "succeeded") if s > restarted_at]) >= 3,
            timeout=45,
            message="the job did not resume after Redis came back",
        )
        assert beat.popen.poll() is None


def test_jobs_status_reports_beat_workers_queues_and_jobs(system: System) -> None:
    system.configure([job("pulse", "* * * * * *", overlap="allow"), job("stuck", "* * * * * *", job_name="explode")])
    system.worker("w1", concurrency=2)
    system.beat()
    wait_until(lambda: len(slots(system.history("pulse"), "succeeded")) >= 2, timeout=30)
    wait_until(lambda: len(slots(system.history("stuck"), "failed")) >= 1, timeout=30)
    status = system.cli_json("jobs", "status")
    assert status["beat"]["healthy"] is True and status["beat"]["lag_seconds"] < 5
    assert status["beat"]["leader"] in status["beat"]["instances"]
    assert len(status["workers"]) == 1 and status["workers"][0].startswith("w1@")
    assert isinstance(status["queues"]["sp_scheduler"], int)
    jobs = {j["name"]: j for j in status["jobs"]}
    assert jobs["pulse"]["last_success"] and not jobs["pulse"]["late"] and jobs["pulse"]["period_seconds"] == 1
    assert jobs["stuck"]["last_failure"] and jobs["stuck"]["late"]
    text = system.cli("jobs", "status")
    assert text.exit_code == 0 and "beat:     leader" in text.stdout and "LATE" in text.stdout


def test_an_undecodable_entry_is_logged_and_skipped(system: System) -> None:
    system.configure([job("healthy", "* * * * * *", overlap="allow")])
    system.worker()
    # Planted before beat starts: its first tick fires due entries before its first sync (which
    # would remove an entry no config names).
    client = redis.Redis.from_url(system.redis_url)
    bad_key = keys.entry_key("hand_edited")
    client.hset(
        bad_key,
        mapping={
            "definition": '{"schedule": {"__type__": "sp_cron", "expression": "61 * * * * *"},'
            ' "kwargs": {"job_name": "hand_edited"}}'
        },
    )
    client.zadd(keys.schedule_key(), {bad_key: 0})
    beat = system.beat()
    wait_until(lambda: "unusable schedule; skipped" in beat.output(), timeout=15)
    before = len(slots(system.history("healthy"), "succeeded"))
    wait_until(lambda: len(slots(system.history("healthy"), "succeeded")) >= before + 2, timeout=15)
    assert beat.popen.poll() is None


def test_beat_and_worker_refuse_an_unmigrated_database(system: System, empty_database_url: str) -> None:
    for command in ("beat", "worker"):
        process = start_process(command, [command], system.env(SP_DATABASE_URL=empty_database_url), system.log_dir)
        assert process.popen.wait(timeout=60) == 4, process.output()
        assert "run `sp-scheduler db migrate`" in process.output()


def test_beat_keeps_time_and_the_lead_while_postgres_is_away(system: System) -> None:
    # Beat's own Postgres work (lost-run reaper, overrides, missed slots) is best effort: with its
    # database gone, slots still leave on time and the leader keeps its lock. The worker keeps its own
    # connection here, so the runs it records show when beat published them.
    proxy = postgres_proxy(system.database_url)
    system.configure([job("tick", "* * * * * *", overlap="allow")])
    system.worker(concurrency=2)
    # SP_RUN_LEASE=3: beat reaps every second, so its ledger work comes due on every tick.
    beat = system.beat(SP_DATABASE_URL=through(system.database_url, proxy), SP_RUN_LEASE="3")
    wait_until(lambda: len(slots(system.history("tick"), "succeeded")) >= 2, timeout=30)
    proxy.cut()
    cut_at = datetime.now(UTC)
    try:
        wait_until(lambda: "beat's ledger work failed; retrying" in beat.output(), timeout=20)
        wait_until(lambda: len([s for s in slots(system.history("tick")) if s > cut_at]) >= 8, timeout=30)
    finally:
        proxy.restore()
    rows = [r for r in system.history("tick") if datetime.fromisoformat(r["scheduled_for"]) > cut_at]
    away = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in rows)[:8]
    assert [b - a for a, b in pairwise(away)] == [timedelta(seconds=1)] * 7
    lateness = sorted(r["lateness_ms"] for r in rows if datetime.fromisoformat(r["scheduled_for"]) in away)
    assert lateness[-1] < 500, f"slots left late while Postgres was away: {lateness} ms"
    assert "beat stepped down" not in beat.output()


def test_beat_gives_up_on_a_silent_redis_and_resumes_when_it_answers(system: System) -> None:
    # A Redis gone silent without closing anything (a failover, a NAT dropping the flow): beat's
    # commands must time out so it steps down and retries, instead of waiting for a reply forever.
    proxy, proxied = redis_proxy(system.redis_url)
    system.configure([job("tick", "* * * * * *", overlap="allow")])
    system.worker(concurrency=2)  # on Redis directly: the runs it records show what beat sent
    beat = system.beat(SP_REDIS_URL=proxied)
    try:
        wait_until(lambda: len(slots(system.history("tick"), "succeeded")) >= 2, timeout=30)
        proxy.freeze()
        wait_until(lambda: "Redis unreachable" in beat.output(), timeout=20, message="beat waited on a silent Redis")
        proxy.thaw()
        answered_at = datetime.now(UTC)
        wait_until(
            lambda: len([s for s in slots(system.history("tick"), "succeeded") if s > answered_at]) >= 3,
            timeout=45,
            message="beat did not resume once Redis answered again",
        )
    finally:
        proxy.cut()
