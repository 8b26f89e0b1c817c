"""The core maintenance jobs against real Postgres: exactly the rows their rules name, dry runs that match.

Rows are placed well clear of each threshold (an hour or more either side) so the seconds a test takes
never move a row across one. Jobs run in-process with `jobs run NAME --local`, so every run is also
recorded in the ledger like any manual run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sp_scheduler.errors import ExitCode
from sp_scheduler.store import connect, query_logs
from sp_scheduler.store.application import APPLICATION_TABLES
from tests.integration.conftest import System
from tests.support.processes import start_process

pytestmark = pytest.mark.integration

CORE_JOBS = (
    "cleanup_anonymous_users",
    "cleanup_empty_contexts",
    "cleanup_inactive_sessions",
    "database_cleanup",
    "publish_content",
)


@pytest.fixture
def app(system: System) -> System:
    """The system with the core jobs configured (manual only)."""
    system.configure(
        [{"name": name, "extension": "core", "job": name, "schedule": "", "enabled": True} for name in CORE_JOBS]
    )
    return system


@pytest.fixture
def db(app: System) -> Iterator[psycopg.Connection[Any]]:
    with connect(app.database_url, autocommit=True) as conn:
        yield conn


def run(system: System, job: str, *params: str, **env: str) -> dict[str, Any]:
    """Run a job in-process and return its ledger record."""
    args = ["jobs", "run", job, "--local", "--json"]
    for param in params:
        args += ["-p", param]
    result = system.cli(*args, **env)
    assert result.exit_code in (0, ExitCode.FAILURE), result.output
    (record,) = json.loads(result.stdout)
    assert (result.exit_code == 0) == (record["status"] == "succeeded"), record
    return dict(record)


def snapshot(conn: psycopg.Connection[Any], tables: Sequence[str] = APPLICATION_TABLES) -> dict[str, set[str]]:
    """Every row of every table, as text: equal snapshots mean nothing changed."""
    return {table: {row[0] for row in conn.execute(f"SELECT t::text FROM {table} AS t").fetchall()} for table in tables}


def ids(conn: psycopg.Connection[Any], table: str) -> set[uuid.UUID]:
    return {row[0] for row in conn.execute(f"SELECT id FROM {table}").fetchall()}


def add_user(conn: psycopg.Connection[Any], age: str, *, anonymous: bool = True, upgraded: bool = False) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO users (is_anonymous, upgraded_at, created_at) VALUES (%s, CASE WHEN %s THEN now() END,"
        " now() - %s::interval) RETURNING id",
        (anonymous, upgraded, age),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_session(
    conn: psycopg.Connection[Any], user: uuid.UUID, idle: str, ended: str | None = None, reason: str = "logout"
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO user_sessions (user_id, created_at, last_activity_at, ended_at, end_reason)"
        " VALUES (%s, now() - interval '60 days', now() - %s::interval, now() - %s::interval,"
        " CASE WHEN %s::interval IS NOT NULL THEN %s END) RETURNING id",
        (user, idle, ended, ended, reason),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_context(conn: psycopg.Connection[Any], user: uuid.UUID, age: str, messages: int = 0) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO contexts (user_id, created_at) VALUES (%s, now() - %s::interval) RETURNING id", (user, age)
    ).fetchone()
    assert row is not None
    context = uuid.UUID(str(row[0]))
    for n in range(messages):
        conn.execute(
            "INSERT INTO context_messages (context_id, role, content) VALUES (%s, 'user', %s)", (context, f"m{n}")
        )
    return context


def add_oauth(conn: psycopg.Connection[Any], user: uuid.UUID | None, expires_in: str, *, code: bool) -> uuid.UUID:
    token = uuid.uuid4().hex
    if code:
        query = (
            "INSERT INTO oauth_authorization_codes (code_hash, client_id, user_id, redirect_uri, expires_at)"
            " VALUES (%s, 'web', %s, 'https://example.com/cb', now() + %s::interval) RETURNING id"
        )
    else:
        query = (
            "INSERT INTO oauth_tokens (token_hash, token_type, client_id, user_id, expires_at)"
            " VALUES (%s, 'access', 'web', %s, now() + %s::interval) RETURNING id"
        )
    row = conn.execute(query, (token, user, expires_in)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_log(conn: psycopg.Connection[Any], age: str, message: str = "old line", level: str = "INFO") -> int:
    row = conn.execute(
        "INSERT INTO sp_logs (created_at, level, logger, message, job_name) VALUES (now() - %s::interval, %s,"
        " 'test', %s, 'somejob') RETURNING id",
        (age, level, message),
    ).fetchone()
    assert row is not None
    return int(row[0])


def assert_dry_run_then_real_then_noop(
    system: System, db: psycopg.Connection[Any], job: str, expected: int, *params: str
) -> dict[str, Any]:
    """Dry run changes nothing and reports `expected`; the real run reports the same; a second run does nothing."""
    before = snapshot(db)
    dry = run(system, job, "dry_run=true", *params)
    assert dry["status"] == "succeeded" and dry["items_processed"] == expected, dry
    assert dry["message"].startswith("dry run: ")
    assert snapshot(db) == before
    real = run(system, job, *params)
    assert real["status"] == "succeeded" and real["items_processed"] == expected and real["items_failed"] == 0, real
    after = snapshot(db)
    again = run(system, job, *params)
    assert again["status"] == "succeeded" and again["items_processed"] == 0, again
    assert snapshot(db) == after
    return real


def test_cleanup_anonymous_users_deletes_exactly_old_unupgraded_idle_ones_with_their_rows(
    app: System, db: psycopg.Connection[Any]
) -> None:
    victim = add_user(db, "31 days")  # with dependents of every kind
    add_session(db, victim, idle="40 days", ended="39 days")
    victim_context = add_context(db, victim, "35 days", messages=2)
    add_oauth(db, victim, "-20 days", code=True)
    add_oauth(db, victim, "10 days", code=False)
    ended_only = add_user(db, "45 days")
    add_session(db, ended_only, idle="2 days", ended="2 days", reason="expired")
    bare = add_user(db, "90 days")
    young = add_user(db, "29 days")  # just inside the threshold
    signed_in = add_user(db, "60 days")  # an open session keeps the account, however idle
    add_session(db, signed_in, idle="20 days")
    upgraded = add_user(db, "60 days", anonymous=False, upgraded=True)
    inconsistent = add_user(db, "60 days", upgraded=True)  # flagged anonymous but upgraded: kept
    registered = add_user(db, "400 days", anonymous=False)
    add_context(db, registered, "300 days", messages=1)
    keeper_context = add_context(db, young, "28 days", messages=1)

    real = assert_dry_run_then_real_then_noop(app, db, "cleanup_anonymous_users", 3, "batch_size=2")
    assert real["message"] == "deleted 3 anonymous users older than 30 days"
    assert ids(db, "users") == {young, signed_in, upgraded, inconsistent, registered}
    assert victim_context not in ids(db, "contexts") and keeper_context in ids(db, "contexts")
    owners = {row[0] for row in db.execute("SELECT user_id FROM user_sessions").fetchall()}
    assert owners == {signed_in}
    assert db.execute("SELECT count(*) FROM context_messages").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM oauth_authorization_codes").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM oauth_tokens").fetchone() == (0,)
    assert ended_only not in ids(db, "users") and bare not in ids(db, "users")
    # A wider window catches the young one too; a narrower threshold is a parameter away.
    assert run(app, "cleanup_anonymous_users", "days=28", "dry_run=true")["items_processed"] == 1


def test_cleanup_empty_contexts_deletes_only_old_contexts_without_messages(
    app: System, db: psycopg.Connection[Any]
) -> None:
    user = add_user(db, "100 days", anonymous=False)
    old_empty = [add_context(db, user, age) for age in ("25 hours", "3 days", "300 days")]
    young_empty = add_context(db, user, "23 hours")
    old_with_messages = add_context(db, user, "10 days", messages=3)
    young_with_messages = add_context(db, user, "1 hour", messages=1)

    real = assert_dry_run_then_real_then_noop(app, db, "cleanup_empty_contexts", 3, "batch_size=1")
    assert real["message"] == "deleted 3 empty contexts older than 24 h"
    assert ids(db, "contexts") == {young_empty, old_with_messages, young_with_messages}
    assert not set(old_empty) & ids(db, "contexts")
    assert db.execute("SELECT count(*) FROM context_messages").fetchone() == (4,)
    assert run(app, "cleanup_empty_contexts", "hours=22", "dry_run=true")["items_processed"] == 1


def test_cleanup_inactive_sessions_expires_idle_ones_and_removes_old_ended_ones(
    app: System, db: psycopg.Connection[Any]
) -> None:
    user = add_user(db, "100 days", anonymous=False)
    idle = add_session(db, user, idle="2 hours")
    long_idle = add_session(db, user, idle="30 days")  # expired now, removed only days from now
    active = add_session(db, user, idle="30 minutes")
    ended_long_ago = add_session(db, user, idle="9 days", ended="8 days")
    expired_long_ago = add_session(db, user, idle="20 days", ended="19 days", reason="expired")
    ended_recently = add_session(db, user, idle="6 days", ended="6 days")
    already_expired = add_session(db, user, idle="3 days", ended="2 days", reason="expired")
    untouched = {
        s: db.execute("SELECT s::text FROM user_sessions s WHERE id = %s", (s,)).fetchone()
        for s in (active, ended_recently, already_expired)
    }

    real = assert_dry_run_then_real_then_noop(app, db, "cleanup_inactive_sessions", 4)
    assert real["message"] == (
        "expired 2 idle sessions idle for over 1 h; deleted 2 ended sessions ended over 7 days ago"
    )
    assert ids(db, "user_sessions") == {idle, long_idle, active, ended_recently, already_expired}
    assert ended_long_ago not in ids(db, "user_sessions") and expired_long_ago not in ids(db, "user_sessions")
    expired = db.execute(
        "SELECT id, end_reason, now() - ended_at < interval '1 minute' FROM user_sessions WHERE id = ANY(%s)",
        ([idle, long_idle],),
    ).fetchall()
    assert sorted((reason, fresh) for _, reason, fresh in expired) == [("expired", True), ("expired", True)]
    for session, text in untouched.items():
        assert db.execute("SELECT s::text FROM user_sessions s WHERE id = %s", (session,)).fetchone() == text
    # A shorter idle limit and retention are parameters (the shortcut passes them as --hours/--days).
    refused = app.cli("jobs", "run", "cleanup_inactive_sessions", "--local", "-p", "hours=0", "-p", "dry_run=true")
    assert refused.exit_code == ExitCode.INVALID and "'hours': 0 is below the minimum 1" in refused.stderr


def test_jobs_cleanup_sessions_shortcut_runs_the_job_and_records_the_run(
    app: System, db: psycopg.Connection[Any]
) -> None:
    user = add_user(db, "100 days", anonymous=False)
    add_session(db, user, idle="3 hours")
    add_session(db, user, idle="90 minutes")
    before = snapshot(db)
    dry = app.cli("jobs", "cleanup-sessions", "--hours", "2", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "cleanup_inactive_sessions  succeeded" in dry.stdout and "would expire 1 idle sessions" in dry.stdout
    assert snapshot(db) == before
    real = app.cli("jobs", "cleanup-sessions", "--hours", "1")
    assert real.exit_code == 0 and "expired 2 idle sessions idle for over 1 h" in real.stdout, real.output
    history = app.history("cleanup_inactive_sessions")
    assert [(r["trigger"], r["status"], r["items_processed"]) for r in history] == [
        ("manual", "succeeded", 2),
        ("manual", "succeeded", 1),
    ]
    assert history[1]["params"] == {"hours": 2, "dry_run": True}, "the ledger holds the checked, typed values"
    app.cli("jobs", "disable", "cleanup_inactive_sessions")
    refused = app.cli("jobs", "cleanup-sessions")
    assert refused.exit_code == ExitCode.REFUSED and "disabled" in refused.stderr
    assert app.cli("jobs", "cleanup-sessions", "--force").exit_code == 0


def test_database_cleanup_prunes_old_logs_and_expired_oauth_rows_then_vacuums(
    app: System, db: psycopg.Connection[Any]
) -> None:
    user = add_user(db, "100 days", anonymous=False)
    old_logs = [add_log(db, age) for age in ("31 days", "45 days", "400 days")]
    kept_logs = [add_log(db, age) for age in ("29 days", "1 hour")]
    add_oauth(db, user, "-1 hour", code=True)
    live_code = add_oauth(db, user, "10 minutes", code=True)
    expired_tokens = {add_oauth(db, user, "-2 hours", code=False), add_oauth(db, None, "-1 day", code=False)}
    live_token = add_oauth(db, user, "1 hour", code=False)
    db.execute("UPDATE oauth_tokens SET revoked_at = now() WHERE id = %s", (live_token,))  # revoked, not expired

    dry = run(app, "database_cleanup", "dry_run=true")
    assert dry["items_processed"] == 6
    assert "would vacuum sp_logs, oauth_authorization_codes, oauth_tokens" in dry["message"]
    log_ids = {row[0] for row in db.execute("SELECT id FROM sp_logs").fetchall()}
    assert set(old_logs + kept_logs) <= log_ids
    real = run(app, "database_cleanup")
    assert real["status"] == "succeeded" and real["items_processed"] == 6, real
    assert real["message"].startswith(
        "deleted 3 log lines older than 30 days; deleted 1 expired OAuth codes; deleted 2 expired OAuth tokens;"
        " vacuumed sp_logs, oauth_authorization_codes, oauth_tokens;"
    )
    log_ids = {row[0] for row in db.execute("SELECT id FROM sp_logs").fetchall()}
    assert not set(old_logs) & log_ids and set(kept_logs) <= log_ids
    assert ids(db, "oauth_authorization_codes") == {live_code}
    assert ids(db, "oauth_tokens") == {live_token} and not expired_tokens & ids(db, "oauth_tokens")
    vacuumed = dict(
        db.execute(
            "SELECT relname, last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            (["sp_logs", "oauth_tokens", "users"],),
        ).fetchall()
    )
    assert {table: done for table, done in vacuumed.items() if table != "sp_logs"} == {
        "oauth_tokens": True,
        "users": False,
    }
    # sp_logs is partitioned (migration 0009): VACUUM of it vacuums each partition, which Postgres records.
    partitions_vacuumed = db.execute(
        "SELECT bool_and(t.last_vacuum IS NOT NULL), count(*) FROM pg_partition_tree('sp_logs') p"
        " JOIN pg_stat_user_tables t ON t.relid = p.relid WHERE p.isleaf"
    ).fetchone()
    assert partitions_vacuumed is not None and partitions_vacuumed[0] is True and partitions_vacuumed[1] >= 2
    with connect(app.database_url) as conn:
        lines = {row.message: row for _, row in query_logs(conn, run_id=real["id"], limit=100)}
    relations = {entry["relation"] for entry in lines["bloat estimate"].fields["relations"]}
    assert {"sp_logs", "sp_logs_created_idx", "users", "users_pkey", "content"} <= relations
    assert lines["maintenance rule applied"].fields["table"] in {"sp_logs", "oauth_authorization_codes", "oauth_tokens"}
    again = run(app, "database_cleanup")
    assert again["items_processed"] == 0 and "nothing to vacuum" in again["message"]


def run_rows(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM sp_job_runs").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("local", [True, False], ids=["local", "queued"])
def test_a_typod_or_badly_typed_parameter_is_refused_before_any_row_changes(
    app: System, db: psycopg.Connection[Any], local: bool
) -> None:
    user = add_user(db, "100 days", anonymous=False)
    add_context(db, user, "3 days")  # an old empty context: the real (not dry) run would delete it
    before = snapshot(db)
    mode = ["--local"] if local else []
    for job, param, why in (
        ("cleanup_empty_contexts", "dryrun=true", "unknown parameter 'dryrun' (did you mean 'dry_run'?)"),
        ("cleanup_empty_contexts", "days=abc", "unknown parameter 'days'; accepted: hours, batch_size"),
        ("cleanup_empty_contexts", "batch_size=0", "parameter 'batch_size': 0 is below the minimum 1"),
        ("cleanup_anonymous_users", "days=soon", "parameter 'days': 'soon' is not a whole number"),
        ("database_cleanup", "vacuum=maybe", "parameter 'vacuum': 'maybe' is not true or false"),
    ):
        result = app.cli("jobs", "run", job, *mode, "-p", param)
        assert result.exit_code == ExitCode.INVALID, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: job {job!r}: ") and why in line, line
    refused = app.cli("jobs", "cleanup-sessions", "--hours", "0")
    assert refused.exit_code != 0
    assert run_rows(db) == 0, "no run row was written"
    assert snapshot(db) == before, "no application row changed"
    assert run(app, "cleanup_empty_contexts", "dry_run=true")["message"].startswith("dry run: would delete 1")


def test_config_validate_and_the_worker_refuse_bad_yaml_params(app: System, tmp_path: Path) -> None:
    app.configure(
        [
            {
                "name": "cleanup_empty_contexts",
                "extension": "core",
                "job": "cleanup_empty_contexts",
                "schedule": "",
                "enabled": True,
                "params": {"dryrun": True},
            },
        ]
    )
    checked = app.cli("config", "validate")
    assert checked.exit_code == ExitCode.INVALID
    assert f"{app.config}:" in checked.stderr
    assert "job 'cleanup_empty_contexts': unknown parameter 'dryrun' (did you mean 'dry_run'?)" in checked.stderr
    assert app.cli("jobs", "run", "cleanup_empty_contexts", "--local").exit_code == ExitCode.INVALID
    for role in ("beat", "worker"):  # real processes refuse to start on it
        process = start_process(role, [role], app.env(), app.log_dir)
        assert process.popen.wait(timeout=60) == ExitCode.INVALID, process.output()
        assert "unknown parameter 'dryrun' (did you mean 'dry_run'?)" in process.output()


def write(root: Path, relative: str, text: str) -> None:
    path = root / "content" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def content_rows(db: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(
        "SELECT slug, kind, title, published, source_path, body, tags, content_hash FROM content"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_publish_content_picks_up_added_edited_and_removed_files(
    app: System, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    services = tmp_path / "services"
    env = {"SP_SERVICES_DIR": str(services)}
    write(services, "about.md", "---\ntitle: About us\nslug: about\n---\n# About\n\nWho we are.\n")
    write(
        services,
        "blog/first.md",
        "---\ntitle: First post\ndescription: Hello\nkind: blog\npublic: true\ntags: [news, intro]\n"
        'published_at: "2026-02-02"\n---\n\nThe first post.\n',
    )
    first = run(app, "publish_content", **env)
    assert first["status"] == "succeeded" and first["items_processed"] == 2, first
    assert first["message"] == "published 2 new, 0 updated, 0 unpublished, 0 unchanged"
    rows = content_rows(db)
    assert rows["about"][:4] == ("page", "About us", True, "about.md")
    assert rows["first"][:5] == ("blog", "First post", True, "blog/first.md", "The first post.\n")
    assert rows["first"][5] == ["news", "intro"]
    published_at = db.execute("SELECT published_at, front_matter FROM content WHERE slug = 'first'").fetchone()
    assert published_at is not None and published_at[0] == datetime(2026, 2, 2, tzinfo=UTC)
    assert published_at[1]["tags"] == ["news", "intro"] and published_at[1]["published_at"] == "2026-02-02"
    second = run(app, "publish_content", **env)
    assert second["items_processed"] == 0 and second["message"].endswith("2 unchanged")

    write(services, "about.md", "---\ntitle: About us\nslug: about\n---\n# About\n\nWho we are, edited.\n")
    write(services, "docs/setup.md", "# Setting up\n\nNo front matter at all.\n")
    (services / "content" / "blog" / "first.md").unlink()
    before = content_rows(db)
    dry = run(app, "publish_content", "dry_run=true", **env)
    assert dry["message"] == "dry run: would publish 1 new, 1 updated, 1 unpublished, 0 unchanged"
    assert dry["items_processed"] == 3 and content_rows(db) == before
    real = run(app, "publish_content", **env)
    assert real["message"] == "published 1 new, 1 updated, 1 unpublished, 0 unchanged" and real["items_processed"] == 3
    rows = content_rows(db)
    assert rows["about"][4] == "# About\n\nWho we are, edited.\n" and rows["about"][6] != before["about"][6]
    assert rows["first"][2] is False and rows["first"][4] == before["first"][4]  # unpublished, kept as it was
    assert rows["setup"][:4] == ("docs", "Setting up", True, "docs/setup.md")
    assert run(app, "publish_content", **env)["items_processed"] == 0

    write(services, "blog/first.md", "---\ntitle: First post, back\nkind: blog\n---\nAgain.\n")
    back = run(app, "publish_content", **env)
    assert back["message"] == "published 0 new, 1 updated, 0 unpublished, 2 unchanged"
    assert content_rows(db)["first"][1:3] == ("First post, back", True)


def test_publish_content_reports_broken_files_and_never_touches_application_rows(
    app: System, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    services = tmp_path / "services"
    env = {"SP_SERVICES_DIR": str(services)}
    missing = run(app, "publish_content", **env)
    assert missing["status"] == "failed" and "content directory" in missing["message"]

    db.execute("INSERT INTO content (slug, title, body, content_hash) VALUES ('pricing', 'Pricing', 'app-owned', 'x')")
    write(services, "good.md", "---\ntitle: Good\n---\nFine.\n")
    write(services, "broken.md", "---\ntitle: Fine for now\n---\nBody.\n")
    assert run(app, "publish_content", **env)["items_processed"] == 2
    published = content_rows(db)["broken"]
    write(services, "broken.md", "---\ntitle: [unclosed\n---\nBody.\n")
    write(services, "pricing.md", "---\ntitle: Pricing from a file\n---\nShould not win.\n")
    write(services, "_draft.md", "---\ntitle: Draft\n---\nSkipped: leading underscore.\n")
    record = run(app, "publish_content", **env)
    assert record["status"] == "failed" and record["items_processed"] == 0 and record["items_failed"] == 2, record
    assert "broken.md: front matter is not valid YAML" in record["message"]
    assert "pricing.md: slug 'pricing' belongs to content the application manages" in record["message"]
    assert content_rows(db)["broken"] == published  # a file that fails to parse keeps its row as it was
    assert set(content_rows(db)) == {"good", "broken", "pricing"}
    assert content_rows(db)["pricing"][4] == "app-owned"
    with connect(app.database_url) as conn:
        errors = [row for _, row in query_logs(conn, run_id=record["id"], min_level="ERROR", limit=10)]
    assert {row.fields.get("path") for row in errors if row.message == "content file not published"} == {
        "broken.md",
        "pricing.md",
    }

    # Removing every file would unpublish everything: refused unless asked for explicitly.
    for path in (services / "content").glob("*.md"):
        path.unlink()
    refused = run(app, "publish_content", **env)
    assert refused["status"] == "failed" and "refusing to unpublish 2 items" in refused["message"]
    assert content_rows(db)["good"][2] is True
    allowed = run(app, "publish_content", "allow_empty=true", **env)
    assert allowed["status"] == "succeeded" and allowed["items_processed"] == 2
    assert content_rows(db)["good"][2] is False and content_rows(db)["pricing"][2] is True


def clear_threshold_bands(db: psycopg.Connection[Any]) -> None:
    """Move seeded rows at least an hour away from every job's threshold, so test seconds cannot matter."""
    bands = (
        ("users", "created_at", "30 days"),
        ("contexts", "created_at", "24 hours"),
        ("user_sessions", "last_activity_at", "1 hour"),
        ("user_sessions", "ended_at", "7 days"),
        ("sp_logs", "created_at", "30 days"),
        ("oauth_authorization_codes", "expires_at", "0 seconds"),
        ("oauth_tokens", "expires_at", "0 seconds"),
    )
    for table, column, age in bands:
        db.execute(
            f"UPDATE {table} SET {column} = {column} - interval '2 hours'"
            f" WHERE {column} BETWEEN now() - %s::interval - interval '1 hour'"
            " AND now() - %s::interval + interval '1 hour'",
            (age, age),
        )
    db.execute(
        "UPDATE user_sessions SET last_activity_at = least(last_activity_at, ended_at) WHERE ended_at IS NOT NULL"
    )


def test_every_cleanup_job_on_seeded_data_matches_its_dry_run_and_then_does_nothing(
    app: System, db: psycopg.Connection[Any]
) -> None:
    seeded = app.cli("demo", "seed", "--users", "300", "--json")
    assert seeded.exit_code == 0, seeded.output
    clear_threshold_bands(db)
    for job in ("cleanup_inactive_sessions", "cleanup_empty_contexts", "cleanup_anonymous_users", "database_cleanup"):
        expected = run(app, job, "dry_run=true")["items_processed"]
        assert expected > 0, job
        assert_dry_run_then_real_then_noop(app, db, job, expected, "batch_size=50")


def test_demo_seed_fills_every_table_and_refuses_to_mix_into_existing_rows(
    app: System, db: psycopg.Connection[Any]
) -> None:
    first = app.cli("demo", "seed", "--users", "100", "--json")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)["rows"]
    assert {k: v for k, v in rows.items() if k != "context_messages"} == {
        "users": 100,
        "user_sessions": 150,
        "contexts": 120,
        "oauth_authorization_codes": 20,
        "oauth_tokens": 50,
        "sp_logs": 100,
        "content": 10,
    }
    assert 0 < rows["context_messages"] < 120 * 3
    counts = dict(db.execute("SELECT is_anonymous, count(*) FROM users GROUP BY 1").fetchall())
    assert counts[True] > 0 and counts[False] > 0
    indexes = db.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'user_sessions'").fetchone()
    assert indexes == (4,)  # dropped for the bulk insert and built again

    refused = app.cli("demo", "seed", "--users", "10")
    assert refused.exit_code == ExitCode.INVALID and "--append" in refused.stderr
    assert app.cli("demo", "seed", "--users", "10", "--append").exit_code == 0
    assert db.execute("SELECT count(*) FROM users").fetchone() == (110,)
    reset = app.cli("demo", "seed", "--users", "10", "--reset")
    assert reset.exit_code == 0 and reset.stdout.startswith("seeded 10 users, 15 user_sessions"), reset.output
    assert db.execute("SELECT count(*) FROM users").fetchone() == (10,)
    assert db.execute("SELECT count(*) FROM sp_logs WHERE fields @> '{\"demo\": true}'").fetchone() == (10,)
