"""Demo data for the application tables: realistic shapes at any size, generated inside Postgres.

Every table is filled by one INSERT ... SELECT over generate_series, so a million rows cost seconds,
not a million round trips. Times are spread over the last `days` days; the mix (anonymous and
upgraded users, open and ended sessions, empty contexts, expired OAuth rows, old log lines) gives
every core job something to do and something it must leave alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from sp_scheduler.errors import UsageError
from sp_scheduler.store.application import APPLICATION_TABLES

DEMO_JOBS = ("cleanup_anonymous_users", "cleanup_empty_contexts", "cleanup_inactive_sessions", "database_cleanup")


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """How many rows of each kind to create; `for_users` derives a realistic mix from a user count."""

    users: int
    sessions: int
    contexts: int
    oauth_codes: int
    oauth_tokens: int
    logs: int
    content: int
    days: int = 60
    empty_context_ratio: float = 0.3
    anonymous_ratio: float = 0.3

    @classmethod
    def for_users(cls, users: int, days: int = 60) -> SeedPlan:
        if users < 1 or days < 1:
            raise UsageError("demo seed needs at least 1 user and 1 day")
        return cls(
            users=users,
            sessions=users * 3 // 2,
            contexts=users * 6 // 5,
            oauth_codes=users // 5,
            oauth_tokens=users // 2,
            logs=users,
            content=min(1000, max(10, users // 1000)),
            days=days,
        )


# Users: registered, anonymous, or anonymous-then-upgraded. Also kept in a temporary table with a
# dense index so the tables that refer to users can pick one at random with a hash join.
_USERS = """
CREATE TEMP TABLE seed_users ON COMMIT DROP AS
SELECT i AS n, (%(salt)s || '1' || lpad(to_hex(i), 23, '0'))::uuid AS id, created,
       CASE WHEN r < %(anonymous)s THEN 'anonymous' WHEN r < %(anonymous)s * 1.3 THEN 'upgraded'
            ELSE 'registered' END AS kind
FROM (SELECT i, random() AS r, now() - random() * make_interval(days => %(days)s) AS created
      FROM generate_series(1, %(users)s) AS i) AS g
"""
_USERS_INSERT = """
INSERT INTO users (id, email, display_name, is_anonymous, upgraded_at, created_at, updated_at, last_seen_at)
SELECT id,
       CASE WHEN kind <> 'anonymous' THEN 'user' || n || '.' || %(salt)s || '@example.com' END,
       CASE WHEN kind <> 'anonymous' THEN 'User ' || n END,
       kind = 'anonymous',
       CASE WHEN kind = 'upgraded' THEN created + (now() - created) * random() / 4 END,
       created, created, created + (now() - created) * random()
FROM seed_users
"""
# A random user per row: a volatile column in a subquery (not flattened), hash-joined on the dense index.
_PICK_USER = (
    "FROM (SELECT i, 1 + floor(random() * %(users)s)::int AS pick FROM generate_series(1, {count}) AS i) AS g"
    " JOIN seed_users AS u ON u.n = g.pick"
)
# Sessions last minutes to days; about 70 % have ended (logout or expiry), the rest are still open.
_SESSIONS = (
    """
INSERT INTO user_sessions (id, user_id, created_at, last_activity_at, ended_at, end_reason, user_agent, ip_address)
SELECT (%(salt)s || '2' || lpad(to_hex(i), 23, '0'))::uuid, user_id, created, active,
       CASE WHEN r < 0.7 THEN least(now(), active + random() * interval '30 minutes') END,
       CASE WHEN r < 0.42 THEN 'logout' WHEN r < 0.7 THEN 'expired' END,
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (Macintosh)', 'curl/8.5.0'])[1 + i %% 3],
       ('10.' || i %% 250 || '.' || (i / 250) %% 250 || '.' || 1 + i %% 200)::inet
FROM (SELECT i, user_id, created, random() AS r,
             least(now(), created + random() * least(now() - created, interval '2 days')) AS active
      FROM (SELECT g.i, u.id AS user_id, u.created + (now() - u.created) * random() AS created
            """
    + _PICK_USER.format(count="%(sessions)s")
    + """) AS s) AS t
"""
)
_CONTEXTS = """
CREATE TEMP TABLE seed_contexts ON COMMIT DROP AS
SELECT (%(salt)s || '3' || lpad(to_hex(g.i), 23, '0'))::uuid AS id, u.id AS user_id,
       u.created + (now() - u.created) * random() AS created,
       CASE WHEN random() < %(empty)s THEN 0 ELSE 1 + floor(random() * 3)::int END AS messages
""" + _PICK_USER.format(count="%(contexts)s")
_CONTEXTS_INSERT = """
INSERT INTO contexts (id, user_id, title, created_at, updated_at)
SELECT id, user_id, CASE WHEN messages > 0 THEN 'Conversation ' || left(id::text, 8) END, created, created
FROM seed_contexts
"""
_MESSAGES = """
INSERT INTO context_messages (context_id, role, content, created_at)
SELECT c.id, CASE WHEN k %% 2 = 1 THEN 'user' ELSE 'assistant' END,
       CASE WHEN k %% 2 = 1 THEN 'How do I schedule a job every 15 minutes?'
            ELSE 'Use a six-field expression: 0 */15 * * * *' END,
       least(now(), c.created + k * interval '20 seconds')
FROM seed_contexts AS c CROSS JOIN LATERAL generate_series(1, c.messages) AS k
"""
# Codes live ten minutes, access tokens an hour, refresh tokens thirty days: most old ones are expired.
_CODES = (
    """
INSERT INTO oauth_authorization_codes (id, code_hash, client_id, user_id, redirect_uri, scope, created_at,
                                       expires_at, used_at)
SELECT (%(salt)s || '4' || lpad(to_hex(i), 23, '0'))::uuid, md5(%(salt)s || ':code:' || i), 'demo-web', user_id,
       'https://app.example.com/callback', 'openid profile', created, created + interval '10 minutes',
       CASE WHEN random() < 0.8 THEN created + random() * interval '1 minute' END
FROM (SELECT g.i, u.id AS user_id, u.created + (now() - u.created) * random() AS created
      """
    + _PICK_USER.format(count="%(codes)s")
    + """) AS t
"""
)
_TOKENS = (
    """
INSERT INTO oauth_tokens (id, token_hash, token_type, client_id, user_id, scope, created_at, expires_at,
                          revoked_at)
SELECT (%(salt)s || '5' || lpad(to_hex(i), 23, '0'))::uuid, md5(%(salt)s || ':token:' || i), kind, 'demo-web',
       user_id, 'openid profile', created,
       created + CASE WHEN kind = 'access' THEN interval '1 hour' ELSE interval '30 days' END,
       CASE WHEN random() < 0.05 THEN created + random() * interval '1 hour' END
FROM (SELECT g.i, u.id AS user_id, u.created + (now() - u.created) * random() AS created,
             CASE WHEN g.i %% 2 = 0 THEN 'access' ELSE 'refresh' END AS kind
      """
    + _PICK_USER.format(count="%(tokens)s")
    + """) AS t
"""
)
_LOGS = """
INSERT INTO sp_logs (created_at, level, logger, message, job_name, run_id, fields)
SELECT created, level, 'sp_scheduler.jobs.' || job, message, job, md5(%(salt)s || ':run:' || (i / 4))::uuid,
       jsonb_build_object('demo', true)
FROM (SELECT i, now() - random() * make_interval(days => %(days)s) AS created,
             (%(jobs)s::text[])[1 + i %% cardinality(%(jobs)s::text[])] AS job,
             CASE WHEN r < 0.85 THEN 'INFO' WHEN r < 0.95 THEN 'WARNING' ELSE 'ERROR' END AS level,
             CASE WHEN r < 0.85 THEN 'maintenance rule applied' WHEN r < 0.95 THEN 'maintenance batch deferred'
                  ELSE 'job failed' END AS message
      FROM (SELECT i, random() AS r FROM generate_series(1, %(logs)s) AS i) AS g) AS l
"""
_CONTENT = """
INSERT INTO content (slug, kind, title, description, body, tags, content_hash, published, published_at)
SELECT 'demo-post-' || %(salt)s || '-' || i, 'blog', 'Demo post ' || i, 'Generated by sp-scheduler demo seed',
       '# Demo post ' || i || E'\n\nSome words about scheduled jobs.', ARRAY['demo'],
       md5(%(salt)s || ':content:' || i), true, now() - random() * make_interval(days => %(days)s)
FROM generate_series(1, %(content)s) AS i
"""


def application_has_rows(conn: psycopg.Connection[Any]) -> bool:
    """Whether any application table holds a row (demo seed refuses to mix into real data by accident)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM contexts) OR EXISTS (SELECT 1 FROM content)"
        ).fetchone()
    return bool(row and row[0])


def reset(conn: psycopg.Connection[Any]) -> None:
    """Empty the application tables and drop earlier demo log lines (other log lines stay)."""
    with conn.transaction():
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, APPLICATION_TABLES))))
        conn.execute("DELETE FROM sp_logs WHERE fields @> %s", (Jsonb({"demo": True}),))


@dataclass(frozen=True, slots=True)
class SeedReport:
    """Rows inserted per table and seconds spent per step."""

    rows: dict[str, int]
    seconds: dict[str, float]


def seed(
    conn: psycopg.Connection[Any], plan: SeedPlan, *, rebuild: Sequence[str] = (), skip_triggers: bool = False
) -> SeedReport:
    """Fill the tables in one transaction (all or nothing).

    `rebuild` names tables whose secondary indexes are dropped before the inserts and built again
    after them, in the same transaction: building an index once is several times faster than a
    million random insertions into it. It takes ACCESS EXCLUSIVE locks on those tables until the
    seed commits, so use it on tables nothing else is writing (a fresh or reset database).
    `skip_triggers` (superuser only, for benchmarks on scratch databases) also skips foreign-key
    checks and other triggers: the generated rows are consistent by construction.
    """
    params = {
        **asdict(plan),
        "salt": uuid.uuid4().hex[:8],
        "anonymous": plan.anonymous_ratio,
        "empty": plan.empty_context_ratio,
        "codes": plan.oauth_codes,
        "tokens": plan.oauth_tokens,
        "jobs": list(DEMO_JOBS),
    }
    # (step, ((table the statement fills, or None for set-up, statement), ...))
    steps: tuple[tuple[str, tuple[tuple[str | None, str], ...]], ...] = (
        ("users", ((None, _USERS), (None, "ANALYZE seed_users"), ("users", _USERS_INSERT))),
        ("sessions", (("user_sessions", _SESSIONS),)),
        ("contexts", ((None, _CONTEXTS), ("contexts", _CONTEXTS_INSERT), ("context_messages", _MESSAGES))),
        ("oauth", (("oauth_authorization_codes", _CODES), ("oauth_tokens", _TOKENS))),
        ("logs", (("sp_logs", _LOGS),)),
        ("content", (("content", _CONTENT),)),
    )
    rows: dict[str, int] = {}
    seconds: dict[str, float] = {}
    with conn.transaction():
        began = time.monotonic()
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        if skip_triggers:
            conn.execute("SET LOCAL session_replication_role = replica")
        dropped = _drop_secondary_indexes(conn, rebuild)
        seconds["drop_indexes"] = time.monotonic() - began
        for step, statements in steps:
            began = time.monotonic()
            for table, statement in statements:
                cur = conn.execute(statement, params)
                if table is not None:
                    rows[table] = cur.rowcount
            seconds[step] = time.monotonic() - began
        began = time.monotonic()
        for definition in dropped:
            conn.execute(sql.SQL(definition))  # DDL from pg_get_indexdef
        seconds["build_indexes"] = time.monotonic() - began
        began = time.monotonic()  # planner statistics, as a database in use would have them
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, rows))))
        seconds["analyze"] = time.monotonic() - began
    return SeedReport(rows, seconds)


def _drop_secondary_indexes(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """Drop the indexes of `tables` that back no constraint; returns their definitions to rebuild them."""
    if not tables:
        return []
    found = conn.execute(
        "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE i.indrelid = ANY(%s::regclass[])"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
        (list(tables),),
    ).fetchall()
    for schema, name, _ in found:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    return [definition for _, _, definition in found]
