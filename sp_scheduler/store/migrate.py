"""Versioned schema migrations: numbered SQL files applied in order, each in its own transaction,
then the ledger's functions (`functions.py`), re-created only where their text changed, then the
ledger's partitions of this week and the next (`partitions.py`).

Files are `migrations/NNNN_name.sql` shipped as package data; the number is the schema version, and
the numbers run 1, 2, 3... without gaps. Migrations hold tables, indexes and constraints only.
`sp_schema_migrations` records what a database has. Concurrent starters serialise on a session
advisory lock, so two processes migrating at once apply each file (and each function) exactly once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import tuple_row

from sp_scheduler.errors import SchemaOutOfDate
from sp_scheduler.store.functions import apply_functions, missing_functions, stale_functions
from sp_scheduler.store.latest import TRIGGER_NAME, ensure_tracking, tracking_installed
from sp_scheduler.store.partitions import ensure_partitions

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
# A fixed key ("sp_sched" in ASCII) so every sp-scheduler process contends for the same lock.
_MIGRATION_LOCK_KEY = 0x73705F7363686564


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: its version number, name and text."""

    version: int
    name: str
    sql: str


@cache
def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this code, in version order; duplicate numbers are a packaging bug."""
    found: dict[int, Migration] = {}
    for entry in resources.files("sp_scheduler.store.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share version {version}: {found[version].name}, {match.group(2)}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    if sorted(found) != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must run 1..N without gaps: {sorted(found)}")
    return tuple(found[v] for v in sorted(found))


CODE_SCHEMA_VERSION: int = max((m.version for m in load_migrations()), default=0)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The highest migration the database has applied; 0 when it has never been migrated."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT to_regclass('sp_schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        row = cur.execute("SELECT coalesce(max(version), 0) FROM sp_schema_migrations").fetchone()
    return int(row[0]) if row else 0


def require_current_schema(conn: psycopg.Connection[Any]) -> None:
    """Refuse to run against a schema older than the code; a newer one is fine (rolling upgrades).

    At the code's own version a function the code calls must exist; one whose text differs from the
    code's is only logged: during a rolling upgrade the older and the newer release share a schema
    version, and each must still start (a change they cannot share comes with a new migration number).
    """
    current = schema_version(conn)
    if current < CODE_SCHEMA_VERSION:
        raise SchemaOutOfDate(
            f"database schema is at version {current} but this code needs {CODE_SCHEMA_VERSION}: "
            "run `sp-scheduler db migrate`"
        )
    if current > CODE_SCHEMA_VERSION:
        return
    missing = missing_functions(conn)
    if missing:
        raise SchemaOutOfDate(
            f"database schema version {current} lacks the functions {', '.join(missing)}: run `sp-scheduler db migrate`"
        )
    if not tracking_installed(conn):
        raise SchemaOutOfDate(
            f"database schema version {current} lacks the trigger {TRIGGER_NAME}: run `sp-scheduler db migrate`"
        )
    stale = stale_functions(conn)
    if stale:
        log.warning("database functions differ from this code's", extra={"functions": stale, "schema": current})


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What one `apply_schema` did: the migration versions and the functions it applied."""

    versions: list[int]
    functions: list[str]


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply every pending migration, then the functions; returns the versions applied (see `apply_schema`)."""
    return apply_schema(conn).versions


def apply_schema(conn: psycopg.Connection[Any]) -> Upgrade:
    """Apply every pending migration, then (re-)create the functions whose text changed.

    The connection must have no transaction open: each file commits on its own, so a failure leaves
    the database at the last good version. A database at a newer schema version than the code's keeps
    its functions: they belong to the newer release that migrated it.
    """
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise RuntimeError("migrate() needs a connection with no transaction in progress")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
    try:
        versions = _apply_pending(conn)
        if schema_version(conn) > CODE_SCHEMA_VERSION:
            return Upgrade(versions, [])
        functions = apply_functions(conn)
        # The trigger that keeps sp_job_latest needs its function, so it comes after them; it is created
        # with the summary's fill in one transaction (store/latest.py).
        filled = ensure_tracking(conn)
        if filled is not None:
            log.info("job summary filled and its trigger created", extra={"rows": filled})
        # This week's partitions and the next ones, so a new ledger's rows never wait in DEFAULT for the
        # retention job's first pass (store/partitions.py).
        ensure_partitions(conn)
        return Upgrade(versions, functions)
    finally:
        if not conn.broken:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))


def _apply_pending(conn: psycopg.Connection[Any]) -> list[int]:
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS sp_schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {int(v) for (v,) in cur.execute("SELECT version FROM sp_schema_migrations").fetchall()}
    done: list[int] = []
    for migration in load_migrations():
        if migration.version in applied:
            continue
        with conn.transaction():
            # Bytes: the file holds several statements, sent as one simple query.
            conn.execute(migration.sql.encode("utf-8"))
            conn.execute(
                "INSERT INTO sp_schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
        log.info("applied schema migration", extra={"version": migration.version, "migration": migration.name})
        done.append(migration.version)
    return done
