"""Overrides that expire and can be reset, their trail, and queued runs no worker claimed: against
real Postgres and Redis, and real `celery` beat and worker processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis

from sp_scheduler.beat_ledger import BeatLedger
from sp_scheduler.config import DEFAULT_QUEUE
from sp_scheduler.errors import ExitCode
from sp_scheduler.ledger.postgres import PostgresLedger
from sp_scheduler.store import (
    enqueue_run,
    expire_overrides,
    get_override,
    get_overrides,
    get_run,
    open_pool,
    override_changes,
    reap_lost,
    reset_override,
    set_enabled,
)
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.ledger import claim

pytestmark = pytest.mark.integration


def db_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)  # type: ignore[no-any-return]


def scheduled(system: System, name: str, status: str | None = None) -> list[datetime]:
    return sorted(
        datetime.fromisoformat(r["scheduled_for"])
        for r in system.history(name)
        if r["trigger"] == "schedule" and (status is None or r["status"] == status)
    )


def every_second(name: str) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": "noop", "schedule": "* * * * * *", "enabled": True,
            "overlap": "allow"}  # fmt: skip


def manual(name: str) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": "noop", "schedule": "", "enabled": True}


# -- the store -----------------------------------------------------------------------------------------


def test_an_expired_override_no_longer_wins_over_the_config(conn: psycopg.Connection[Any]) -> None:
    now = db_now(conn)
    set_enabled(conn, "cleanup", enabled=False, actor="ops", expires_at=now + timedelta(hours=1))
    assert get_override(conn, "cleanup") is not None
    assert claim(conn, overlap="allow", use_override=True).outcome == "skipped"  # in force: the claim obeys it

    set_enabled(conn, "cleanup", enabled=False, actor="ops", expires_at=now - timedelta(seconds=1))
    assert get_override(conn, "cleanup") is None and get_overrides(conn) == {}
    later = claim(conn, slot=datetime(2025, 1, 1, 3, 1, tzinfo=UTC), overlap="allow", use_override=True)
    assert later.outcome == "run"  # expired: the config's `enabled` stands, though the row is still there


def test_every_change_of_an_override_lands_in_the_trail(conn: psycopg.Connection[Any]) -> None:
    until = db_now(conn) + timedelta(hours=2)
    set_enabled(conn, "report", enabled=False, actor="alice", reason="noisy", expires_at=until)
    set_enabled(conn, "report", enabled=True, actor="bob")
    cleared = reset_override(conn, "report", actor="carol", reason="back to config")
    assert cleared is not None and (cleared.enabled, cleared.actor) == (True, "bob")
    assert get_override(conn, "report") is None
    assert reset_override(conn, "report", actor="carol") is None  # nothing to clear: nothing recorded

    trail = override_changes(conn, "report")
    assert [(c.action, c.enabled, c.actor, c.reason) for c in trail] == [
        ("reset", None, "carol", "back to config"),
        ("enable", True, "bob", None),
        ("disable", False, "alice", "noisy"),
    ]
    assert trail[2].expires_at == until and trail[0].at >= trail[1].at >= trail[2].at


def test_expired_overrides_are_deleted_once_and_recorded_at_their_expiry(conn: psycopg.Connection[Any]) -> None:
    soon = db_now(conn) + timedelta(seconds=0.5)
    set_enabled(conn, "report", enabled=False, actor="alice", reason="deploy", expires_at=soon)
    set_enabled(conn, "cleanup", enabled=False, actor="bob", expires_at=soon + timedelta(days=1))
    expired = wait_until(lambda: expire_overrides(conn), timeout=5, message="the override to expire")
    assert [(o.job_name, o.actor) for o in expired] == [("report", "alice")]
    assert expire_overrides(conn) == []  # once only
    assert set(get_overrides(conn)) == {"cleanup"}
    (latest, _) = override_changes(conn, "report")
    assert (latest.action, latest.actor, latest.reason, latest.at, latest.expires_at) == (
        "expire",
        "alice",
        "deploy",
        soon,
        soon,
    )


def test_queued_runs_no_worker_claimed_within_the_deadline_become_lost(conn: psycopg.Connection[Any]) -> None:
    stale = "5d1f0a4e-0000-4000-8000-000000000001"
    fresh = "5d1f0a4e-0000-4000-8000-000000000002"
    for run_id in (stale, fresh):
        enqueue_run(conn, run_id=run_id, job_name="cleanup", trigger="manual", scheduled_for=None, params={})
    conn.execute("UPDATE sp_job_runs SET enqueued_at = enqueued_at - interval '2 hours' WHERE id = %s", (stale,))

    assert reap_lost(conn) == []  # without a deadline, only expired leases count
    (lost,) = reap_lost(conn, queued_deadline=3600)
    assert (lost.id, lost.status) == (stale, "lost") and lost.finished_at is not None
    assert lost.message is not None and lost.message.startswith("never claimed")
    assert get_run(conn, fresh).status == "queued"
    assert reap_lost(conn, queued_deadline=3600) == []
    # Its message turning up after all does not run it: the run is over.
    late = claim(conn, slot=None, trigger="manual", run_id=stale)
    assert late.outcome == "duplicate" and get_run(conn, stale).status == "lost"


def test_beats_ledger_drops_an_override_at_its_expiry_without_reading_again(
    database_url: str, conn: psycopg.Connection[Any]
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    set_enabled(conn, "report", enabled=False, actor="ops", expires_at=expires)
    pool = open_pool(database_url, min_size=1, max_size=2, timeout=1.0, autocommit=True, check_on_checkout=False)
    ledger = BeatLedger(PostgresLedger(pool.connection), reap_interval=60.0, refresh_interval=60.0)
    ledger.start()
    try:
        ledger.refresh_overrides(wait=5)
        version, overrides = ledger.overrides()
        assert overrides == {"report": False}
        assert ledger.overrides(now=expires - timedelta(seconds=1)) == (version, {"report": False})
        assert ledger.overrides(now=expires) == (version + 1, {})  # the tick sees the expiry itself
    finally:
        ledger.stop(timeout=5)
        pool.close()


# -- the CLI ---------------------------------------------------------------------------------------------


def test_list_and_show_say_where_the_enabled_state_comes_from(system: System) -> None:
    system.configure([manual("noop")])

    def source() -> dict[str, Any]:
        listed = system.cli_json("jobs", "list")
        (row,) = [r for r in listed["jobs"] if r["name"] == "noop"]
        shown = system.cli_json("jobs", "show", "noop")
        assert shown["enabled_source"] == row["enabled_source"] and shown["enabled"] == row["enabled"]
        return dict(row["enabled_source"])

    first = source()
    assert first["from"] == "config" and first["where"].startswith(f"{system.config}:")

    disabled = system.cli("jobs", "disable", "noop", "--for", "2h", "--reason", "deploy", SP_ACTOR="alice@ops")
    assert disabled.exit_code == 0, disabled.output
    assert disabled.stdout.startswith("disabled noop by alice@ops until ") and "(deploy)" in disabled.stdout
    found = source()
    assert (found["from"], found["actor"], found["reason"]) == ("override", "alice@ops", "deploy")
    expires = datetime.fromisoformat(found["expires_at"])
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)

    listed = system.cli("jobs", "list").stdout
    (line,) = [x for x in listed.splitlines() if x.startswith("noop ")]
    assert f"override until {found['expires_at']}" in line
    shown = system.cli("jobs", "show", "noop").stdout
    assert f"Enabled from:   override by alice@ops until {found['expires_at']}: deploy" in shown
    assert "disable  by alice@ops until" in shown

    reset = system.cli("jobs", "reset", "noop", "--reason", "done", SP_ACTOR="bob@ops")
    assert reset.exit_code == 0, reset.output
    assert "reset noop by bob@ops: was disabled by alice@ops, now the config's value (enabled)" in reset.stdout
    assert source()["from"] == "config"
    trail = system.cli_json("jobs", "show", "noop")["override_changes"]
    assert [(c["action"], c["actor"], c["reason"]) for c in trail] == [
        ("reset", "bob@ops", "done"),
        ("disable", "alice@ops", "deploy"),
    ]

    again = system.cli("jobs", "reset", "noop")
    assert again.exit_code == 0 and "noop: no override; the config's value stands (enabled)" in again.stdout
    unknown = system.cli("jobs", "reset", "noop", "nosuch")
    assert unknown.exit_code == ExitCode.NOT_FOUND and "nosuch" in unknown.stderr
    assert len(system.cli_json("jobs", "show", "noop")["override_changes"]) == 2  # the refused call changed nothing


# -- a running beat --------------------------------------------------------------------------------------


def removals(output: str, job: str) -> int:
    """How many of beat's sync summaries removed `job` (`removed_jobs=...`)."""
    return sum(
        1
        for line in output.splitlines()
        if "schedule synced" in line
        and any(f.startswith("removed_jobs=") and job in f[13:].split(",") for f in line.split())
    )


def test_a_running_beat_applies_reset_and_expiry(system: System) -> None:
    system.configure([every_second("toggled")])
    system.worker()
    beat = system.beat()
    wait_until(lambda: scheduled(system, "toggled", "succeeded"), timeout=30)

    # disable -> the entry goes; reset -> it is back within a tick or two.
    assert system.cli("jobs", "disable", "toggled").exit_code == 0
    wait_until(lambda: removals(beat.output(), "toggled") == 1, timeout=10)
    assert system.cli("jobs", "reset", "toggled").exit_code == 0
    reset_at = datetime.now(UTC)
    wait_until(lambda: [s for s in scheduled(system, "toggled", "succeeded") if s > reset_at], timeout=5)

    # disable --for 4s -> the slots stop, then resume by themselves: no CLI call in between.
    disabled = system.cli("jobs", "disable", "toggled", "--for", "4s", "--reason", "short pause")
    assert disabled.exit_code == 0, disabled.output
    disabled_at = datetime.now(UTC)
    expires_at = datetime.fromisoformat(disabled.stdout.split(" until ")[1].split(" ")[0])
    wait_until(lambda: removals(beat.output(), "toggled") == 2, timeout=10)
    resumed = wait_until(lambda: [s for s in scheduled(system, "toggled") if s >= expires_at], timeout=10)
    assert resumed[0] < expires_at + timedelta(seconds=3)  # beat applied the expiry within a tick or two
    # Nothing fired while the override was in force (one slot may have been in flight as it was set).
    during = [s for s in scheduled(system, "toggled") if disabled_at + timedelta(seconds=1.5) < s < expires_at]
    assert during == []
    # The reaper records the expiry in the trail, dated at the expiry, by whoever set it.
    trail = wait_until(
        lambda: [c for c in system.cli_json("jobs", "show", "toggled")["override_changes"] if c["action"] == "expire"],
        timeout=30,
    )
    assert datetime.fromisoformat(trail[0]["at"]) == expires_at and trail[0]["reason"] == "short pause"


# -- the reaper in real processes --------------------------------------------------------------------------


def test_a_worker_reaps_a_manual_run_whose_message_vanished(system: System) -> None:
    system.configure([manual("noop")])
    queued = system.cli("jobs", "run", "noop", "--json")  # no worker yet: the message waits in Redis
    assert queued.exit_code == 0, queued.output
    run_id = json.loads(queued.stdout)[0]["run_id"]
    broker = redis.Redis.from_url(system.redis_url)
    assert broker.llen(DEFAULT_QUEUE) == 1
    broker.delete(DEFAULT_QUEUE)  # the message vanishes (a Redis failover without persistence, a flush)

    system.worker(SP_QUEUED_DEADLINE="2", SP_RUN_LEASE="3")
    row = wait_until(lambda: [r for r in system.history("noop") if r["status"] != "queued"], timeout=30)
    assert (row[0]["id"], row[0]["status"]) == (run_id, "lost")
    assert row[0]["message"].startswith("never claimed")


def test_the_leading_beat_reaps_a_run_no_worker_claimed_and_its_late_message_does_not_run(system: System) -> None:
    system.configure([manual("noop")])
    system.beat(SP_QUEUED_DEADLINE="2", SP_RUN_LEASE="3")
    queued = system.cli("jobs", "run", "noop", "--json")
    run_id = json.loads(queued.stdout)[0]["run_id"]
    wait_until(lambda: system.history("noop")[0]["status"] == "lost", timeout=30)
    assert system.history("noop")[0]["message"].startswith("never claimed")

    worker = system.worker()  # the message was still in Redis: it arrives now, and is refused
    wait_until(lambda: "duplicate delivery ignored" in worker.output(), timeout=30)
    (row,) = system.history("noop")
    assert (row["id"], row["status"], row["started_at"]) == (run_id, "lost", None)
