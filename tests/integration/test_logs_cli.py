"""`logs view` over the logs table, and `jobs log-cleanup`, against real Postgres."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sp_scheduler.cli import logs_cmd
from sp_scheduler.errors import ExitCode
from sp_scheduler.store import connect
from tests.integration.conftest import System

pytestmark = pytest.mark.integration


def entry(name: str) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": name, "schedule": "", "enabled": True}


@pytest.fixture
def app(system: System) -> System:
    system.configure(
        [
            entry("explode"),
            entry("fail_softly"),
            entry("chatty"),
            {
                "name": "database_cleanup",
                "extension": "core",
                "job": "database_cleanup",
                "schedule": "",
                "enabled": True,
            },
        ]
    )
    return system


@pytest.fixture
def db(app: System) -> Iterator[psycopg.Connection[Any]]:
    with connect(app.database_url, autocommit=True) as conn:
        yield conn


def add_log(db: psycopg.Connection[Any], age: str, message: str, level: str = "INFO", job: str = "somejob") -> int:
    row = db.execute(
        "INSERT INTO sp_logs (created_at, level, logger, message, job_name) VALUES (now() - %s::interval, %s,"
        " 'test', %s, %s) RETURNING id",
        (age, level, message, job),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_logs_view_shows_the_error_of_a_job_that_just_failed(app: System) -> None:
    assert app.cli("jobs", "run", "explode", "--local").exit_code == ExitCode.FAILURE
    assert app.cli("jobs", "run", "fail_softly", "--local").exit_code == ExitCode.FAILURE
    assert app.cli("jobs", "run", "chatty", "--local").exit_code == 0

    result = app.cli("logs", "view", "--level", "error", "--since", "1h")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not line.startswith("    ")]
    assert len(lines) == 3, result.stdout
    raised, failed, chatty_error = lines
    assert " ERROR    explode [" in raised and "job raised" in raised and "kaboom: the job blew up" in raised
    assert "    Traceback (most recent call last):" in result.stdout  # the traceback, indented below its line
    assert "fail_softly" in failed and "job failed" in failed and 'error="Database not available"' in failed
    assert "chatty" in chatty_error and "one item failed" in chatty_error and "item=b" in chatty_error
    assert "job started" not in result.stdout and "one item looks odd" not in result.stdout

    warnings = app.cli("logs", "view", "--level", "WARNING", "--job", "chatty")
    assert [line.split(" chatty [")[1][10:] for line in warnings.stdout.splitlines()] == [
        "one item looks odd",
        "one item failed  item=b",
    ]
    everything = app.cli("logs", "view", "--job", "chatty", "--json")
    entries = json.loads(everything.stdout)
    assert [e["message"] for e in entries] == [
        "job started",
        "counting items",
        "one item looks odd",
        "one item failed",
        "job succeeded",
    ]
    run_id = entries[0]["run_id"]
    assert {e["run_id"] for e in entries} == {run_id} and entries[1]["fields"] == {"count": 3}
    one_run = app.cli("logs", "view", "--run", run_id, "--limit", "2", "--json")
    assert [e["message"] for e in json.loads(one_run.stdout)] == ["one item failed", "job succeeded"]


def test_logs_view_since_filters_by_age_and_rejects_nonsense(app: System, db: psycopg.Connection[Any]) -> None:
    add_log(db, "3 days", "three days old", "ERROR")
    add_log(db, "2 hours", "two hours old", "ERROR")
    add_log(db, "10 minutes", "ten minutes old", "ERROR")
    for since, expected in (
        ("30m", ["ten minutes old"]),
        ("1h", ["ten minutes old"]),
        ("3h", ["two hours old", "ten minutes old"]),
        ("2d", ["two hours old", "ten minutes old"]),
        ("4d", ["three days old", "two hours old", "ten minutes old"]),
    ):
        result = app.cli("logs", "view", "--since", since, "--json")
        assert [entry["message"] for entry in json.loads(result.stdout)] == expected, since
    bad = app.cli("logs", "view", "--since", "yesterday")
    assert bad.exit_code == ExitCode.INVALID
    assert bad.stderr.strip() == ("error: --since 'yesterday': expected an age such as 30m, 1h, 2d or an ISO-8601 time")
    assert app.cli("logs", "view", "--level", "loud").exit_code == ExitCode.INVALID
    unknown_run = app.cli("logs", "view", "--run", "not-a-run")
    assert unknown_run.exit_code == ExitCode.NOT_FOUND and "not a run id" in unknown_run.stderr


def test_logs_view_follow_prints_new_lines_until_interrupted(
    app: System, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_log(db, "1 minute", "before following", "ERROR")
    add_log(db, "1 minute", "quiet info line")
    polls: list[float] = []

    def tick(seconds: float) -> None:  # stands in for the poll interval: lines arrive, then Ctrl-C
        polls.append(seconds)
        if len(polls) == 1:
            add_log(db, "0 seconds", "arrived while following", "ERROR")
            add_log(db, "0 seconds", "info while following")
        elif len(polls) == 2:
            add_log(db, "0 seconds", "arrived later", "CRITICAL", job="otherjob")
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(logs_cmd.time, "sleep", tick)
    result = app.cli("logs", "view", "--level", "error", "--follow")
    assert result.exit_code == 0, result.output
    assert [" ".join(line.split()[1:]) for line in result.stdout.splitlines()] == [
        "ERROR somejob before following",
        "ERROR somejob arrived while following",
        "CRITICAL otherjob arrived later",
    ]
    assert polls == [logs_cmd.FOLLOW_INTERVAL] * 3

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(logs_cmd.time, "sleep", interrupt)
    as_json = app.cli("logs", "view", "--job", "otherjob", "--follow", "--json")
    assert [json.loads(line)["message"] for line in as_json.stdout.splitlines()] == ["arrived later"]


def test_logs_view_follow_prints_a_line_whose_transaction_commits_after_a_later_one(
    app: System, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ids are given out at insert, not at commit: a slow transaction's line becomes visible after a
    # line with a higher id has already been printed. Following must print it all the same.
    add_log(db, "1 minute", "before following")
    with psycopg.connect(app.database_url, autocommit=True) as other:
        polls = 0

        def tick(seconds: float) -> None:
            nonlocal polls
            polls += 1
            if polls == 1:
                other.execute("BEGIN")
                add_log(other, "0 seconds", "slow to commit")  # the lower id, not yet visible
                add_log(db, "0 seconds", "committed first")
            elif polls == 2:
                other.execute("COMMIT")
            elif polls > 3:
                raise KeyboardInterrupt

        monkeypatch.setattr(logs_cmd.time, "sleep", tick)
        result = app.cli("logs", "view", "--follow")
    assert result.exit_code == 0, result.output
    assert [" ".join(line.split()[3:]) for line in result.stdout.splitlines()] == [
        "before following",
        "committed first",
        "slow to commit",
    ]


def test_jobs_log_cleanup_removes_only_older_lines(app: System, db: psycopg.Connection[Any]) -> None:
    old = [add_log(db, age, "old") for age in ("31 days", "90 days")]
    kept = [add_log(db, age, "recent") for age in ("29 days", "2 hours", "1 minute")]
    token = db.execute(
        "INSERT INTO oauth_tokens (token_hash, token_type, client_id, expires_at)"
        " VALUES ('h', 'access', 'web', now() - interval '1 day') RETURNING id"
    ).fetchone()

    dry = app.cli("jobs", "log-cleanup", "--days", "30", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "database_cleanup  succeeded" in dry.stdout and "would delete 2 log lines older than 30 days" in dry.stdout
    assert set(old) <= {row[0] for row in db.execute("SELECT id FROM sp_logs").fetchall()}

    real = app.cli("jobs", "log-cleanup", "--days", "30", "--json")
    assert real.exit_code == 0, real.output
    (record,) = json.loads(real.stdout)
    assert record["items_processed"] == 2 and record["trigger"] == "manual" and record["job_name"] == "database_cleanup"
    assert record["message"].startswith("deleted 2 log lines older than 30 days; vacuumed sp_logs;")
    remaining = {row[0] for row in db.execute("SELECT id FROM sp_logs").fetchall()}
    assert not set(old) & remaining and set(kept) <= remaining
    assert db.execute("SELECT id FROM oauth_tokens").fetchone() == token  # log-cleanup prunes logs only
    assert [r["items_processed"] for r in app.history("database_cleanup")] == [2, 2]

    shorter = app.cli("jobs", "log-cleanup", "--days", "1")
    assert shorter.exit_code == 0 and "deleted 1 log lines older than 1 days" in shorter.stdout
    assert app.cli("jobs", "log-cleanup", "--days", "0").exit_code == ExitCode.INVALID
