"""The alert state machine and outbox against a real Postgres: events queued in the transaction that
records the outcome or slot, once per state change; routing, leased claims, and auto-pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sp_scheduler.store import finish_run, get_override, reap_lost, record_slots
from sp_scheduler.store.alerts import (
    alert_states,
    auto_pause,
    claim_deliveries,
    delivery_history,
    give_up,
    mark_delivered,
    mark_late,
    renotify,
    retry_later,
    route_events,
)
from tests.support.ledger import SLOT, claim

pytestmark = pytest.mark.integration


def events(conn: psycopg.Connection[Any], job: str | None = None) -> list[str]:
    rows = conn.execute(
        "SELECT event FROM sp_alert_outbox WHERE %(job)s::text IS NULL OR job_name = %(job)s ORDER BY id",
        {"job": job},
    ).fetchall()
    return [row[0] for row in rows]


def run_once(conn: psycopg.Connection[Any], job: str, slot: datetime, status: str, error: str | None = None) -> str:
    run = claim(conn, job, slot).record
    assert run is not None
    finish_run(
        conn,
        run.id,
        status=status,
        message=f"{status} here",
        items_processed=0,
        items_failed=0,  # type: ignore[arg-type]
        duration_ms=5,
        error=error,
    )
    return run.id


def test_a_run_of_failures_queues_one_failed_and_one_recovered(conn: psycopg.Connection[Any]) -> None:
    first = run_once(conn, "flaky", SLOT, "failed", error="boom")
    for n in range(1, 5):
        run_once(conn, "flaky", SLOT + timedelta(seconds=n), "failed" if n % 2 else "timeout")
    assert events(conn) == ["failed"]
    state = alert_states(conn)["flaky"]
    assert (state.state, state.consecutive_failures) == ("failing", 5)
    detail = conn.execute("SELECT run_id, detail FROM sp_alert_outbox").fetchone()
    assert detail is not None and str(detail[0]) == first
    assert detail[1]["error"] == "boom" and detail[1]["consecutive_failures"] == 1

    recovered = run_once(conn, "flaky", SLOT + timedelta(seconds=10), "succeeded")
    run_once(conn, "flaky", SLOT + timedelta(seconds=11), "succeeded")
    assert events(conn) == ["failed", "recovered"]
    row = conn.execute("SELECT run_id, detail FROM sp_alert_outbox WHERE event = 'recovered'").fetchone()
    assert row is not None and str(row[0]) == recovered and row[1]["consecutive_failures"] == 5
    assert alert_states(conn)["flaky"].state == "ok"


def test_successes_of_a_healthy_job_queue_nothing(conn: psycopg.Connection[Any]) -> None:
    for n in range(3):
        run_once(conn, "steady", SLOT + timedelta(seconds=n), "succeeded")
    assert events(conn) == []
    assert alert_states(conn) == {}


def test_a_reaped_run_is_lost_and_alerts_in_the_reaping_transaction(conn: psycopg.Connection[Any]) -> None:
    claim(conn, "vanishing", SLOT, lease_seconds=0.001)
    conn.execute("SELECT pg_sleep(0.01)")
    assert len(reap_lost(conn)) == 1
    assert events(conn) == ["lost"]


def test_a_lost_run_that_then_fails_counts_once_in_the_streak(conn: psycopg.Connection[Any]) -> None:
    run = claim(conn, "slowpoke", SLOT, lease_seconds=0.001).record
    assert run is not None
    conn.execute("SELECT pg_sleep(0.01)")
    assert len(reap_lost(conn)) == 1
    finish_run(
        conn,
        run.id,
        status="failed",
        message="failed here",
        items_processed=0,
        items_failed=0,  # type: ignore[arg-type]
        duration_ms=5,
        error="boom",
    )
    status = conn.execute("SELECT status FROM sp_job_runs WHERE id = %s", (run.id,)).fetchone()
    assert status is not None and status[0] == "failed"  # its true outcome replaced 'lost'
    assert alert_states(conn)["slowpoke"].consecutive_failures == 1
    assert events(conn) == ["lost"]
    run_once(conn, "slowpoke", SLOT + timedelta(seconds=1), "failed")
    assert alert_states(conn)["slowpoke"].consecutive_failures == 2


def test_missed_slots_queue_one_event_per_batch_and_refused_slots_fail(conn: psycopg.Connection[Any]) -> None:
    slots = [SLOT + timedelta(minutes=n) for n in range(4)]
    assert record_slots(conn, job_name="nightly", slots=slots, status="missed", message="beat was down") == 4
    assert record_slots(conn, job_name="nightly", slots=slots, status="missed", message="again") == 0
    assert events(conn) == ["missed"]
    row = conn.execute("SELECT detail FROM sp_alert_outbox").fetchone()
    assert row is not None and row[0]["missed_slots"] == 4 and row[0]["message"] == "beat was down"
    assert alert_states(conn) == {}  # missing a slot is no failure

    record_slots(conn, job_name="future", slots=[SLOT], status="failed", message="refused: ahead")
    record_slots(conn, job_name="quiet", slots=[SLOT], status="skipped", message="disabled")
    assert events(conn) == ["missed", "failed"]


def test_late_is_queued_once_and_a_success_recovers_it(conn: psycopg.Connection[Any]) -> None:
    assert mark_late(conn, "slow", {"expected_slot": SLOT.isoformat()})
    assert not mark_late(conn, "slow", {})
    run_once(conn, "slow", SLOT, "succeeded")
    assert events(conn) == ["late", "recovered"]


def test_renotify_repeats_the_state_only_after_the_interval(conn: psycopg.Connection[Any]) -> None:
    run_once(conn, "broken", SLOT, "failed")
    assert not renotify(conn, "broken", older_than=datetime.now(UTC) - timedelta(hours=1))
    assert renotify(conn, "broken", older_than=datetime.now(UTC) + timedelta(seconds=1))
    assert not renotify(conn, "healthy", older_than=datetime.now(UTC) + timedelta(seconds=1))
    assert events(conn) == ["failed", "failed"]


def test_auto_pause_disables_after_n_failures_and_again_after_n_more(conn: psycopg.Connection[Any]) -> None:
    for n in range(2):
        run_once(conn, "crashy", SLOT + timedelta(seconds=n), "failed")
    assert not auto_pause(conn, "crashy", 3)
    run_once(conn, "crashy", SLOT + timedelta(seconds=2), "failed")
    assert auto_pause(conn, "crashy", 3)
    assert not auto_pause(conn, "crashy", 3)  # once per N failures
    override = get_override(conn, "crashy")
    assert override is not None and not override.enabled and override.actor == "auto-pause"
    assert override.reason is not None and "3 consecutive failed runs" in override.reason
    assert events(conn) == ["failed", "paused"]
    for n in range(3, 6):
        run_once(conn, "crashy", SLOT + timedelta(seconds=n), "failed")
    assert auto_pause(conn, "crashy", 3)


def test_routing_claims_and_outcomes_of_deliveries(conn: psycopg.Connection[Any]) -> None:
    run_once(conn, "a", SLOT, "failed")
    run_once(conn, "b", SLOT, "failed")
    routed = route_events(conn, lambda e: (["hook", "chat"], None) if e.job_name == "a" else ((), "no rule"))
    assert routed == 2
    assert route_events(conn, lambda e: (["x"], None)) == 0  # each event is routed once

    held = claim_deliveries(conn, lease=30)
    assert sorted(d.target for d in held) == ["chat", "hook"] and all(d.attempts == 1 for d in held)
    assert claim_deliveries(conn, lease=30) == []  # leased: nobody else takes them
    hook = next(d for d in held if d.target == "hook")
    chat = next(d for d in held if d.target == "chat")
    mark_delivered(conn, hook.id)
    retry_later(conn, chat.id, delay=0, error="HTTP 500")
    again = claim_deliveries(conn, lease=30)
    assert [(d.target, d.attempts) for d in again] == [("chat", 2)]
    give_up(conn, chat.id, error="HTTP 404")
    outcomes = {(r.job_name, r.target): r.outcome for r in delivery_history(conn)}
    assert outcomes == {("a", "hook"): "delivered", ("a", "chat"): "gave up", ("b", None): "suppressed"}


def test_a_lapsed_lease_is_claimed_again(conn: psycopg.Connection[Any]) -> None:
    run_once(conn, "a", SLOT, "failed")
    route_events(conn, lambda e: (["hook"], None))
    (first,) = claim_deliveries(conn, lease=0.01)
    conn.execute("SELECT pg_sleep(0.02)")
    (second,) = claim_deliveries(conn, lease=30)
    assert second.id == first.id and second.attempts == 2
