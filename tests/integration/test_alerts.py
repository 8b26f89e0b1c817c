"""Alerts end to end: real beat, worker and notifier processes, real Postgres and Redis, and a local
HTTP receiver as the target. One `failed` and one `recovered` around a run of failures; `missed`
after beat was down; `late` for a job that stopped succeeding; retries through 429 and 500; a
notifier killed mid-delivery delivers everything at least once and nothing twice otherwise; and
auto-pause disabling a job a running beat then stops firing."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from sp_scheduler.store import connect, finish_run, get_override
from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.ledger import claim
from tests.support.processes import TESTING_EXTENSION, ManagedProcess, start_process
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

URL_ENV = "SP_ALERT_TEST_URL"
WEB_URL = "https://dash.example"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


def configure(
    system: System,
    jobs: Sequence[Mapping[str, object]],
    *,
    events: Sequence[str] = ("failed", "timeout", "lost", "missed", "late", "recovered", "paused"),
    **section: object,
) -> None:
    alerts = {
        "targets": {"hook": {"type": "webhook", "url_env": URL_ENV, "timeout": 2}},
        "rules": [{"events": list(events), "targets": ["hook"]}],
        **section,
    }
    document = {"scheduler": {"extensions": [TESTING_EXTENSION], "jobs": list(jobs), "alerts": alerts}}
    system.config.write_text(yaml.safe_dump(document, sort_keys=False))


def job(name: str, kind: str, schedule: str = "* * * * * *", **extra: object) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": kind, "schedule": schedule, "enabled": True, **extra}


def notifier(system: System, receiver: Receiver, name: str = "notifier") -> ManagedProcess:
    env = system.env(**{URL_ENV: receiver.url, "SP_WEB_URL": WEB_URL})
    process = start_process(name, ["notifier", "--poll", "0.2"], env, system.log_dir)
    system.processes.append(process)

    def started() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"notifier exited with {process.popen.returncode}:\n{process.output()}")
        return "notifier started" in process.output()

    wait_until(started, timeout=30, message="notifier did not start")
    return process


def statuses(system: System, name: str) -> list[str]:
    return [r["status"] for r in reversed(system.history(name))]


def status_line(system: System, name: str) -> str:
    """The job's line of the `jobs status` table."""
    result = system.cli("jobs", "status")
    assert result.exit_code == 0, result.output
    return next(line for line in result.stdout.splitlines() if line.startswith(f"{name} "))


def failed_run(conn: psycopg.Connection[Any], name: str, slot: datetime) -> str:
    """A run of `name` recorded failed through the store, as a worker records it."""
    run = claim(conn, name, slot).record
    assert run is not None
    finish_run(conn, run.id, status="failed", message="it broke", items_processed=0, items_failed=0, duration_ms=3)
    return run.id


def test_a_run_of_failures_alerts_once_and_recovery_once(system: System, receiver: Receiver, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    configure(system, [job("flappy", "fail_while_flag", params={"flag": str(flag)}, overlap="allow")])
    system.worker()
    system.beat()
    notes = notifier(system, receiver)
    wait_until(lambda: statuses(system, "flappy").count("failed") >= 4, timeout=40, message="four failures")
    assert receiver.events("flappy") == ["failed"]
    flag.unlink()
    wait_until(lambda: "recovered" in receiver.events("flappy"), timeout=30, message="a recovered alert")
    successes = statuses(system, "flappy").count("succeeded")
    wait_until(lambda: statuses(system, "flappy").count("succeeded") >= successes + 3, timeout=30)
    assert receiver.events("flappy") == ["failed", "recovered"]

    failed, recovered = receiver.payloads()
    first_failure = next(r for r in reversed(system.history("flappy")) if r["status"] == "failed")
    assert failed["run_id"] == first_failure["id"] and failed["status"] == "failed"
    assert failed["message"] == "flag flag is up" and failed["link"] == f"{WEB_URL}/runs/{first_failure['id']}"
    assert recovered["status"] == "succeeded" and recovered["consecutive_failures"] >= 4
    assert receiver.url.split("/")[-1] not in notes.output()  # the webhook's token is never logged

    history = system.cli_json("alerts", "history", "--job", "flappy")["alerts"]
    assert [(h["event"], h["target"], h["outcome"]) for h in history] == [
        ("recovered", "hook", "delivered"),
        ("failed", "hook", "delivered"),
    ]
    status = system.cli_json("jobs", "status")
    assert next(j for j in status["jobs"] if j["name"] == "flappy")["alert"]["state"] == "ok"


def test_429_and_500_are_retried_until_the_target_takes_it(system: System, database_url: str) -> None:
    hook = Receiver([(429, {"Retry-After": "1"}, b"slow down"), (500, {}, b"oops")]).start()
    try:
        configure(system, [job("broken", "fail_softly", schedule="0 0 3 * * *")])
        with connect(database_url, autocommit=True) as conn:
            run_id = failed_run(conn, "broken", datetime(2025, 1, 1, 3, tzinfo=UTC))
        notifier(system, hook)
        wait_until(lambda: len(hook.requests) >= 3, timeout=30, message="three attempts")
        (entry,) = wait_until(
            lambda: [h for h in system.cli_json("alerts", "history")["alerts"] if h["outcome"] == "delivered"],
            timeout=10,
        )
        assert entry["attempts"] == 3 and entry["last_error"] is None
        assert {p["run_id"] for p in hook.payloads()} == {run_id} and len(hook.requests) == 3
    finally:
        hook.stop()


def test_a_notifier_killed_mid_delivery_loses_nothing(system: System, receiver: Receiver, database_url: str) -> None:
    configure(system, [job("first", "fail_softly", schedule=""), job("second", "fail_softly", schedule="")])
    with connect(database_url, autocommit=True) as conn:
        failed_run(conn, "first", datetime(2025, 1, 1, 3, tzinfo=UTC))
        failed_run(conn, "second", datetime(2025, 1, 1, 3, tzinfo=UTC))
    receiver.hold()  # the first delivery reaches the target and gets no answer
    killed = notifier(system, receiver, "notifier1")
    wait_until(lambda: receiver.requests, timeout=20, message="a delivery in flight")
    killed.kill_tree()
    receiver.release()
    notifier(system, receiver, "notifier2")

    def both_delivered() -> bool:
        history = system.cli_json("alerts", "history")["alerts"]
        return len(history) == 2 and all(h["outcome"] == "delivered" for h in history)

    wait_until(both_delivered, timeout=30, message="both alerts delivered after the restart")
    assert set(receiver.events()) == {"failed"}
    jobs = [p["job"] for p in receiver.payloads()]
    in_flight = jobs[0]
    assert jobs.count(in_flight) == 2  # at least once: sent again after its lease lapsed
    other = "second" if in_flight == "first" else "first"
    assert jobs.count(other) == 1  # never twice in the normal path
    first, second = (p for p in receiver.payloads() if p["job"] == in_flight)
    assert first["alert_id"] == second["alert_id"]  # a receiver can tell the repeat


def test_a_job_whose_beat_was_down_past_its_grace_alerts_missed(system: System, receiver: Receiver) -> None:
    configure(system, [job("ticking", "noop", schedule="*/2 * * * * *", misfire_grace=1)], events=["missed"])
    system.worker()
    beat = system.beat()
    notifier(system, receiver)
    wait_until(lambda: "succeeded" in statuses(system, "ticking"), timeout=30)
    beat.kill_tree()
    down_at = time.time()
    wait_until(lambda: time.time() > down_at + 7, timeout=10)  # beat stays down across three slots or more
    system.beat("beat2")
    (missed,) = wait_until(receiver.payloads, timeout=30, message="a missed alert")
    assert missed["event"] == "missed" and missed["job"] == "ticking"
    assert missed["details"]["missed_slots"] >= 2
    assert statuses(system, "ticking").count("missed") == missed["details"]["missed_slots"]


def test_a_job_that_stops_succeeding_alerts_late_then_recovers(
    system: System, receiver: Receiver, database_url: str
) -> None:
    configure(system, [job("hourly", "noop", schedule="0 0 * * * *")], events=["late", "recovered"])
    with connect(database_url, autocommit=True) as conn:  # its last success was three hours ago
        run = claim(conn, "hourly", None, trigger="manual").record
        assert run is not None
        finish_run(conn, run.id, status="succeeded", message="ok", items_processed=0, items_failed=0, duration_ms=1)
        conn.execute("UPDATE sp_job_runs SET finished_at = finished_at - interval '3 hours' WHERE id = %s", (run.id,))
    notifier(system, receiver)
    (late,) = wait_until(receiver.payloads, timeout=30, message="a late alert")
    assert late["event"] == "late" and late["job"] == "hourly" and late["details"]["expected_slot"]
    assert system.cli_json("jobs", "status")["jobs"][0]["alert"]["state"] == "late"
    assert system.cli("jobs", "run", "hourly", "--local").exit_code == 0
    wait_until(lambda: receiver.events() == ["late", "recovered"], timeout=20, message="a recovered alert")


def test_auto_pause_disables_the_job_and_a_running_beat_stops_firing_it(
    system: System, receiver: Receiver, database_url: str
) -> None:
    configure(system, [job("doomed", "fail_softly", overlap="allow")], events=["paused"], pause_after_failures=3)
    system.worker()
    system.beat()
    notifier(system, receiver)
    with connect(database_url, autocommit=True) as conn:
        override = wait_until(lambda: get_override(conn, "doomed"), timeout=40, message="an auto-pause override")
    assert not override.enabled and override.actor == "auto-pause"
    assert override.reason is not None and "consecutive failed runs" in override.reason
    (paused,) = wait_until(receiver.payloads, timeout=20, message="a paused alert")
    assert paused["event"] == "paused" and paused["consecutive_failures"] >= 3
    assert ", paused" in status_line(system, "doomed")

    # The running beat drops the entry: after a slot or two in flight, it fires no slot (there is not even
    # a skipped row for one) while the override stands.
    settled = override.updated_at + timedelta(seconds=3)
    wait_until(lambda: datetime.now(UTC) > settled + timedelta(seconds=4), timeout=15)
    fired = [r for r in system.history("doomed") if datetime.fromisoformat(r["scheduled_for"]) > settled]
    assert fired == []

    # `jobs reset` lifts it: the job runs again.
    assert system.cli("jobs", "reset", "doomed").exit_code == 0
    assert ", paused" not in status_line(system, "doomed")
    reset_at = datetime.now(UTC)
    wait_until(
        lambda: [r for r in system.history("doomed") if datetime.fromisoformat(r["created_at"]) > reset_at],
        timeout=15,
        message="a run after the reset",
    )


def test_alerts_test_sends_one_message_and_says_why_when_refused(system: System) -> None:
    hook = Receiver([(204, {}, b""), (404, {}, b"no such webhook s3cret-token")]).start()
    try:
        configure(system, [])
        env = {URL_ENV: hook.url}
        sent = system.cli("alerts", "test", "hook", **env)
        assert sent.exit_code == 0, sent.output
        assert sent.stdout.strip() == "test alert delivered to 'hook' (webhook to 127.0.0.1)"
        (payload,) = hook.payloads()
        assert payload["test"] is True and payload["job"] == "alerts-test"

        refused = system.cli("alerts", "test", "hook", **env)
        assert refused.exit_code == 1
        assert "HTTP 404" in refused.stderr and "s3cret-token" not in refused.output
        unknown = system.cli("alerts", "test", "nowhere", **env)
        assert unknown.exit_code == 2 and "unknown alert target 'nowhere' (alerts.targets: hook)" in unknown.stderr
    finally:
        hook.stop()
