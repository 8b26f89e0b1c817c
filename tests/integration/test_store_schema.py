"""Where the ledger's SQL lives, against a real server: table migrations, then the functions of
`store/sql/functions.sql`, applied once, re-created only when their text changed; an older database
(schema 6, 7 or 8, with data) upgrades; the status CHECK matches `RUN_STATUSES`."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.errors import SchemaOutOfDate
from sp_scheduler.jobs import SLOT_TRIGGERS, TRIGGERS
from sp_scheduler.store import (
    CODE_SCHEMA_VERSION,
    RUN_STATUSES,
    RunOutcome,
    Upgrade,
    apply_schema,
    connect,
    finish_runs,
    get_override,
    get_run,
    history,
    migrate,
    query_logs,
    require_current_schema,
    schema_version,
)
from sp_scheduler.store.functions import Function, apply_functions, load_functions, stale_functions
from sp_scheduler.store.migrate import load_migrations
from tests.support.ledger import claim

pytestmark = pytest.mark.integration

OLDER_SCHEMA = Path(__file__).parent / "fixtures" / "older_schema.sql"
FUNCTION_NAMES = [f.name for f in load_functions()]
OLDER_FUNCTION_NAMES = ["sp_finish_runs", "sp_claim_run", "sp_claim_run_after"]  # what versions 6 to 8 had


@pytest.fixture
def empty(empty_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(empty_database_url) as connection:
        yield connection


def functions_in_database(conn: psycopg.Connection[Any], name: str) -> list[tuple[int, str, str]]:
    """(oid, identity arguments, result type) of every function of this name."""
    rows = conn.execute(
        "SELECT oid::int, pg_get_function_identity_arguments(oid), pg_get_function_result(oid) FROM pg_proc"
        " WHERE proname = %s AND pronamespace = current_schema()::regnamespace ORDER BY oid",
        (name,),
    ).fetchall()
    conn.commit()
    return [(int(oid), args, result) for oid, args, result in rows]


def build_older_schema(conn: psycopg.Connection[Any], version: int) -> None:
    """A database as `migrate()` left it at `version` (6 to 8), before functions had a file of their own:
    the table migrations up to it as shipped (never edited since), recorded as applied, then
    fixtures/older_schema.sql: the functions those versions had (by their signatures) and data."""
    with conn.transaction():
        conn.execute(
            "CREATE TABLE sp_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in load_migrations()[:version]:
            conn.execute(migration.sql.encode("utf-8"))
            conn.execute(
                "INSERT INTO sp_schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
        conn.execute(OLDER_SCHEMA.read_bytes())


def recorded(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, datetime]]:
    rows = conn.execute("SELECT name, sha256, applied_at FROM sp_schema_functions").fetchall()
    conn.commit()
    return {name: (sha, at) for name, sha, at in rows}


def test_a_fresh_database_gets_every_migration_then_every_function(empty: psycopg.Connection[Any]) -> None:
    result = apply_schema(empty)
    assert result == Upgrade(list(range(1, CODE_SCHEMA_VERSION + 1)), FUNCTION_NAMES)
    assert {name: sha for name, (sha, _) in recorded(empty).items()} == {f.name: f.sha256 for f in load_functions()}
    for name in FUNCTION_NAMES:
        assert len(functions_in_database(empty, name)) == 1
    assert stale_functions(empty) == []
    require_current_schema(empty)


def test_migrating_again_re_creates_no_function(empty: psycopg.Connection[Any]) -> None:
    apply_schema(empty)
    oids = {name: functions_in_database(empty, name) for name in FUNCTION_NAMES}
    before = recorded(empty)
    assert apply_schema(empty) == Upgrade([], [])
    assert migrate(empty) == []
    assert {name: functions_in_database(empty, name) for name in FUNCTION_NAMES} == oids
    assert recorded(empty) == before  # same hashes, same applied_at: nothing was touched


def test_concurrent_migrations_apply_each_function_once(empty_database_url: str) -> None:
    barrier = threading.Barrier(2)

    def run(_: int) -> Upgrade:
        with connect(empty_database_url) as conn:
            barrier.wait(timeout=10)
            return apply_schema(conn)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(2)))
    assert sorted(results, key=lambda r: len(r.functions)) == [
        Upgrade([], []),
        Upgrade(list(range(1, CODE_SCHEMA_VERSION + 1)), FUNCTION_NAMES),
    ]


def test_a_changed_function_text_is_re_created_in_place(empty: psycopg.Connection[Any]) -> None:
    apply_schema(empty)
    (code,) = [f for f in load_functions() if f.name == "sp_claim_run_after"]
    edited = Function(code.name, code.sql.replace("BEGIN\n", "BEGIN\n    -- edited\n", 1))
    assert edited.sql != code.sql
    (before,) = functions_in_database(empty, code.name)

    assert apply_functions(empty, [edited]) == ["sp_claim_run_after"]
    assert functions_in_database(empty, code.name) == [before]  # CREATE OR REPLACE: same oid, same signature
    source = empty.execute("SELECT prosrc FROM pg_proc WHERE oid = %s", (before[0],)).fetchone()
    empty.commit()
    assert source is not None and "-- edited" in source[0]
    assert recorded(empty)[code.name][0] == edited.sha256
    assert stale_functions(empty) == ["sp_claim_run_after"]

    # This code's text differs: noticed (logged) at start, and the next migration puts it back.
    assert apply_schema(empty) == Upgrade([], ["sp_claim_run_after"])
    assert stale_functions(empty) == []


def test_a_function_whose_signature_changed_is_replaced_not_overloaded(empty: psycopg.Connection[Any]) -> None:
    def probe(arguments: str, result: str, body: str) -> Function:
        return Function(
            "sp_probe",
            f"CREATE OR REPLACE FUNCTION sp_probe({arguments}) RETURNS {result}\n"
            f"LANGUAGE plpgsql AS $$\nBEGIN\n    RETURN {body};\nEND;\n$$;",
        )

    assert apply_functions(empty, [probe("a integer", "integer", "a")]) == ["sp_probe"]
    (first,) = functions_in_database(empty, "sp_probe")
    assert first[1:] == ("a integer", "integer")
    assert apply_functions(empty, [probe("a integer", "integer", "a")]) == []

    apply_functions(empty, [probe("a integer, b integer", "integer", "a + b")])  # new arguments
    assert [f[1:] for f in functions_in_database(empty, "sp_probe")] == [("a integer, b integer", "integer")]

    apply_functions(empty, [probe("a integer, b integer", "text", "(a + b)::text")])  # new result type
    assert [f[1:] for f in functions_in_database(empty, "sp_probe")] == [("a integer, b integer", "text")]
    row = empty.execute("SELECT sp_probe(2, 3)").fetchone()
    empty.commit()
    assert row == ("5",)


def test_a_missing_function_is_refused_at_start_and_re_created_by_migrate(empty: psycopg.Connection[Any]) -> None:
    apply_schema(empty)
    with empty.transaction():
        empty.execute("DROP FUNCTION sp_claim_run_after")
    with pytest.raises(SchemaOutOfDate) as raised:
        require_current_schema(empty)
    assert str(raised.value) == (
        f"database schema version {CODE_SCHEMA_VERSION} lacks the functions sp_claim_run_after: "
        "run `sp-scheduler db migrate`"
    )
    assert apply_schema(empty) == Upgrade([], ["sp_claim_run_after"])
    require_current_schema(empty)


def test_differing_function_text_is_logged_at_start(
    empty: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    apply_schema(empty)
    with empty.transaction():
        empty.execute("UPDATE sp_schema_functions SET sha256 = 'older' WHERE name = 'sp_finish_runs'")
    with caplog.at_level(logging.WARNING, logger="sp_scheduler.store.migrate"):
        require_current_schema(empty)  # a rolling upgrade's other release must still start
    (warning,) = [r for r in caplog.records if r.getMessage() == "database functions differ from this code's"]
    assert warning.__dict__["functions"] == ["sp_finish_runs"]


def test_a_newer_schema_keeps_its_functions(empty: psycopg.Connection[Any]) -> None:
    apply_schema(empty)
    with empty.transaction():
        empty.execute("INSERT INTO sp_schema_migrations (version, name) VALUES (9999, 'from_the_future')")
        empty.execute("UPDATE sp_schema_functions SET sha256 = 'newer' WHERE name = 'sp_claim_run'")
    assert apply_schema(empty) == Upgrade([], [])
    assert recorded(empty)["sp_claim_run"][0] == "newer"
    require_current_schema(empty)


@pytest.mark.parametrize("version", [6, 7, 8])
def test_an_older_database_upgrades_and_keeps_its_data(empty: psycopg.Connection[Any], version: int) -> None:
    build_older_schema(empty, version)
    assert schema_version(empty) == version
    old = {name: functions_in_database(empty, name) for name in OLDER_FUNCTION_NAMES}
    assert all(len(found) == 1 for found in old.values())
    if version < CODE_SCHEMA_VERSION:
        with pytest.raises(SchemaOutOfDate):
            require_current_schema(empty)

    assert apply_schema(empty) == Upgrade(list(range(version + 1, CODE_SCHEMA_VERSION + 1)), FUNCTION_NAMES)
    require_current_schema(empty)
    assert stale_functions(empty) == []
    # Replaced, no overload left: migration 0009 re-creates them (they return rows of sp_job_runs, whose
    # table it rebuilt as a partitioned one), so each keeps its signature but not its oid.
    now = {name: functions_in_database(empty, name) for name in OLDER_FUNCTION_NAMES}
    assert {name: [(a, r) for _, a, r in found] for name, found in now.items()} == {
        name: [(a, r) for _, a, r in found] for name, found in old.items()
    }

    runs = {r.id[-1]: r for r in history(empty)}
    assert {k: r.status for k, r in runs.items()} == {"1": "succeeded", "2": "running", "3": "queued", "4": "skipped"}
    assert (runs["1"].message, runs["1"].items_processed, runs["1"].params) == ("Deleted 42", 42, {"days": 30})
    override = get_override(empty, "report")
    assert override is not None and (override.enabled, override.expires_at) == (False, None)
    assert [row.message for _, row in query_logs(empty, run_id=runs["1"].id)] == ["job succeeded"]
    # The rows now live in partitioned tables (0009), the old log line keeps its id and new ones follow it.
    kinds = empty.execute(
        "SELECT relname::text, relkind::text FROM pg_class WHERE relname IN ('sp_job_runs', 'sp_logs')"
    ).fetchall()
    assert dict(kinds) == {"sp_job_runs": "p", "sp_logs": "p"}
    with empty.transaction():
        (old_id,) = empty.execute("SELECT max(id) FROM sp_logs").fetchone() or (None,)
        empty.execute("INSERT INTO sp_logs (level, logger, message) VALUES ('INFO', 't', 'after the upgrade')")
        (new_id,) = empty.execute("SELECT max(id) FROM sp_logs").fetchone() or (None,)
    assert old_id is not None and new_id == old_id + 1

    # Today's claim rules are in force: the old running row (its lease long expired) still holds off an
    # `overlap: skip` slot (0008), the override still disables scheduled slots.
    slot = datetime(2025, 1, 1, 5, 0, tzinfo=UTC)
    held = claim(empty, "cleanup", slot, worker="host-b:2")
    assert held.outcome == "skipped"
    assert held.reason == (
        f"overlap: run {runs['2'].id} still marked running (its lease expired at 2025-01-01T04:00:30.000Z"
        " and no reaper has marked it lost yet)"
    )
    assert claim(empty, "report", slot, use_override=True).reason == "job is disabled"
    # ... and today's outcome rules: a run finished after it was marked lost says so.
    done_id, started = runs["2"].id, runs["2"].started_at
    assert started is not None
    with empty.transaction():
        empty.execute("UPDATE sp_job_runs SET status = 'lost', message = 'lease expired' WHERE id = %s", (done_id,))
    (done,) = finish_runs(empty, [RunOutcome(done_id, "succeeded", "ok", elapsed_seconds=1.0)])
    assert (done.status, done.message) == ("succeeded", "ok [succeeded after it had been marked lost: lease expired]")
    assert get_run(empty, done_id).finished_at == started + timedelta(seconds=1)


def test_the_status_check_constraint_allows_exactly_run_statuses(empty: psycopg.Connection[Any]) -> None:
    apply_schema(empty)
    row = empty.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'sp_job_runs'::regclass AND conname = 'sp_job_runs_status_check'"
    ).fetchone()
    empty.commit()
    assert row is not None
    assert tuple(re.findall(r"'(\w+)'::text", row[0])) == RUN_STATUSES


def test_the_trigger_check_allows_exactly_triggers_and_the_slot_rule_covers_slot_triggers(
    empty: psycopg.Connection[Any],
) -> None:
    apply_schema(empty)
    check = empty.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'sp_job_runs'::regclass AND conname = 'sp_job_runs_trigger_check'"
    ).fetchone()
    index = empty.execute("SELECT pg_get_indexdef('sp_job_runs_slot_key'::regclass)").fetchone()
    empty.commit()
    assert check is not None and index is not None
    assert tuple(re.findall(r"'(\w+)'::text", check[0])) == TRIGGERS
    assert index[0].startswith("CREATE UNIQUE INDEX sp_job_runs_slot_key ON ONLY public.sp_job_runs")
    assert tuple(re.findall(r"'(\w+)'::text", index[0].partition(" WHERE ")[2])) == SLOT_TRIGGERS


def test_db_migrate_says_what_it_applied(empty_database_url: str) -> None:
    env = {"SP_DATABASE_URL": empty_database_url}
    first = CliRunner().invoke(cli, ["db", "migrate"], env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    versions = ", ".join(str(v) for v in range(1, CODE_SCHEMA_VERSION + 1))
    functions = ", ".join(FUNCTION_NAMES)
    assert first.stdout.endswith(
        f"schema version {CODE_SCHEMA_VERSION} (applied {versions}); functions applied: {functions}\n"
    )
    again = CliRunner().invoke(cli, ["db", "migrate"], env=env, catch_exceptions=False)
    assert again.stdout.endswith(f"is up to date (schema version {CODE_SCHEMA_VERSION})\n")
