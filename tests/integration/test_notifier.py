"""The notifier's rules, one pass at a time (`Notifier.step` in this process) against a real Postgres
and a local receiver: routing by the job's rules, the flapping limit, renotify, a missing URL
variable, a command target, and a target dropped from the config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from sp_scheduler.notifier import Notifier
from sp_scheduler.settings import Settings
from sp_scheduler.store import finish_run
from sp_scheduler.store.alerts import delivery_history
from tests.support.ledger import SLOT, claim
from tests.support.processes import TESTING_EXTENSION
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


def write(path: Path, alerts: dict[str, Any], jobs: list[dict[str, Any]] | None = None) -> Path:
    document = {"scheduler": {"extensions": [TESTING_EXTENSION], "jobs": jobs or [], "alerts": alerts}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def notifier(database_url: str, config: Path, env: dict[str, str], outcomes: list[tuple[str, str]]) -> Notifier:
    settings = Settings.from_env({"SP_DATABASE_URL": database_url, "SP_CONFIG": str(config)})
    return Notifier(
        settings,
        env=env,
        on_delivery=lambda target, outcome: outcomes.append((target, outcome)),
        check_interval=0.0,  # renotify and late checks on every pass
    )


def run(conn: psycopg.Connection[Any], job: str, n: int, status: str) -> None:
    record = claim(conn, job, SLOT + timedelta(seconds=n)).record
    assert record is not None
    finish_run(conn, record.id, status=status, message=status, items_processed=0, items_failed=0, duration_ms=1)  # type: ignore[arg-type]


def drain(notes: Notifier) -> None:
    while notes.step():
        pass


def test_a_flapping_job_is_limited_per_hour(
    conn: psycopg.Connection[Any], database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    alerts = {
        "targets": {"hook": {"type": "webhook", "url_env": "HOOK"}},
        "rules": [{"events": "all", "targets": ["hook"]}],
        "max_per_hour": 3,
    }
    outcomes: list[tuple[str, str]] = []
    notes = notifier(database_url, write(tmp_path / "c.yaml", alerts), {"HOOK": receiver.url}, outcomes)
    for n in range(6):
        run(conn, "flapper", n, "failed" if n % 2 == 0 else "succeeded")
    drain(notes)
    assert receiver.events() == ["failed", "recovered", "failed"]
    history = delivery_history(conn)
    assert [r.outcome for r in history].count("suppressed") == 3
    assert all("rate limit: 3 alerts" in (r.suppressed or "") for r in history if r.outcome == "suppressed")
    assert outcomes == [("hook", "delivered")] * 3


def test_rules_route_by_event_and_a_job_may_replace_them(
    conn: psycopg.Connection[Any], database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    other = Receiver().start()
    try:
        alerts = {
            "targets": {
                "ops": {"type": "slack", "url_env": "OPS"},
                "chat": {"type": "discord", "url_env": "CHAT"},
            },
            "rules": [{"events": ["failed"], "targets": ["ops"]}],
        }
        jobs = [
            {"name": "own", "extension": "testing", "job": "noop", "schedule": "", "enabled": True,
             "alerts": {"rules": [{"events": ["failed", "recovered"], "targets": ["chat"]}]}},
        ]  # fmt: skip
        config = write(tmp_path / "c.yaml", alerts, jobs)
        notes = notifier(database_url, config, {"OPS": receiver.url, "CHAT": other.url}, [])
        run(conn, "plain", 0, "failed")
        run(conn, "plain", 1, "succeeded")  # recovered: no rule names it for this job
        run(conn, "own", 0, "failed")
        run(conn, "own", 1, "succeeded")
        drain(notes)
        (slack,) = receiver.payloads()
        assert slack["text"].startswith("*sp-scheduler: job 'plain' failed*")
        titles = [p["embeds"][0]["title"] for p in other.payloads()]
        assert titles == ["sp-scheduler: job 'own' failed", "sp-scheduler: job 'own' recovered"]
        assert all(p["allowed_mentions"] == {"parse": []} for p in other.payloads())
        suppressed = [r for r in delivery_history(conn) if r.outcome == "suppressed"]
        assert [(r.job_name, r.event, r.suppressed) for r in suppressed] == [
            ("plain", "recovered", "no rule names this event")
        ]
    finally:
        other.stop()


def test_renotify_repeats_a_lasting_failure(
    conn: psycopg.Connection[Any], database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    alerts = {
        "targets": {"hook": {"type": "webhook", "url_env": "HOOK"}},
        "rules": [{"events": ["failed"], "targets": ["hook"]}],
        "renotify": "1m",
    }
    notes = notifier(database_url, write(tmp_path / "c.yaml", alerts), {"HOOK": receiver.url}, [])
    run(conn, "stuck", 0, "failed")
    drain(notes)
    assert receiver.events() == ["failed"]
    run(conn, "stuck", 1, "failed")
    notes.step()
    assert receiver.events() == ["failed"]  # still failing, interval not over: nothing
    conn.execute("UPDATE sp_alert_state SET last_notified_at = last_notified_at - interval '2 minutes'")
    drain(notes)
    assert receiver.events() == ["failed", "failed"]
    assert receiver.payloads()[1]["renotify"] is True and receiver.payloads()[1]["consecutive_failures"] == 2


def test_what_cannot_be_delivered_is_given_up_and_said_why(
    conn: psycopg.Connection[Any], database_url: str, tmp_path: Path
) -> None:
    alerts = {
        "targets": {"nourl": {"type": "webhook", "url_env": "SP_NOT_SET_ANYWHERE"}},
        "rules": [{"events": ["failed"], "targets": ["nourl"]}],
    }
    outcomes: list[tuple[str, str]] = []
    notes = notifier(database_url, write(tmp_path / "c.yaml", alerts), {}, outcomes)
    run(conn, "broken", 0, "failed")
    drain(notes)
    (record,) = delivery_history(conn)
    assert record.outcome == "gave up" and record.last_error == "environment variable SP_NOT_SET_ANYWHERE is not set"
    assert outcomes == [("nourl", "gave_up")]


def test_a_command_target_reads_the_payload_on_stdin(
    conn: psycopg.Connection[Any], database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "alert.json"
    alerts = {
        "targets": {"script": {"type": "command", "command": ["sh", "-c", f"cat > {out}"]}},
        "rules": [{"events": ["failed"], "targets": ["script"]}],
    }
    notes = notifier(database_url, write(tmp_path / "c.yaml", alerts), {}, [])
    run(conn, "scripted", 0, "failed")
    drain(notes)
    payload = json.loads(out.read_text())
    assert (payload["event"], payload["job"], payload["status"]) == ("failed", "scripted", "failed")
    assert datetime.fromisoformat(payload["at"]).tzinfo is not None
    assert delivery_history(conn)[0].outcome == "delivered"


def test_a_failing_command_is_retried_later_with_its_status(
    conn: psycopg.Connection[Any], database_url: str, tmp_path: Path
) -> None:
    alerts = {
        "targets": {"script": {"type": "command", "command": ["sh", "-c", "echo nope >&2; exit 3"]}},
        "rules": [{"events": ["failed"], "targets": ["script"]}],
    }
    outcomes: list[tuple[str, str]] = []
    notes = notifier(database_url, write(tmp_path / "c.yaml", alerts), {}, outcomes)
    run(conn, "scripted", 0, "failed")
    drain(notes)
    (record,) = delivery_history(conn)
    assert record.outcome == "pending" and record.last_error == "command exited with status 3: nope"
    row = conn.execute("SELECT next_attempt_at > clock_timestamp() FROM sp_alert_deliveries").fetchone()
    assert row is not None and row[0]  # the next attempt waits for its pause
    assert outcomes == [("script", "retry")]
    assert datetime.now(UTC) < record.created_at + timedelta(minutes=1)
