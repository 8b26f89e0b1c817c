"""The ledger's PL/pgSQL functions, kept in one file (`sql/functions.sql`) rather than in migrations.

A function rewritten migration after migration left its behaviour to whichever `CREATE OR REPLACE`
ran last and its text in several copies. Here each function has one definition; `migrate()` applies
it after the table migrations, under the same advisory lock, and re-creates a function only when its
text differs from the sha256 recorded in `sp_schema_functions` (or the function is gone).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

# One statement per function: from `CREATE OR REPLACE FUNCTION name(` to the `$$;` line that closes it.
_STATEMENT = re.compile(r"^CREATE OR REPLACE FUNCTION (\w+)\(.*?^\$\$;$", re.DOTALL | re.MULTILINE)

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS sp_schema_functions ("
    " name text PRIMARY KEY,"
    " sha256 text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
)
# Overloads are not used: every function of a name in the schema the migrations created it in.
_OIDS_OF = (
    "SELECT p.oid, p.oid::regprocedure::text FROM pg_proc p"
    " WHERE p.proname = %s AND p.pronamespace = current_schema()::regnamespace ORDER BY p.oid"
)


@dataclass(frozen=True, slots=True)
class Function:
    """One function's `CREATE OR REPLACE FUNCTION` statement and the sha256 of its text."""

    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def parse_functions(text: str) -> tuple[Function, ...]:
    """The function statements of a file, in file order; a name defined twice is a packaging bug."""
    found: dict[str, Function] = {}
    for match in _STATEMENT.finditer(text):
        name = match.group(1)
        if name in found:
            raise RuntimeError(f"function {name} is defined twice in functions.sql")
        found[name] = Function(name, match.group(0))
    return tuple(found.values())


@cache
def load_functions() -> tuple[Function, ...]:
    """Every function shipped with this code (`sp_scheduler/store/sql/functions.sql`)."""
    text = resources.files("sp_scheduler.store.sql").joinpath("functions.sql").read_text(encoding="utf-8")
    return parse_functions(text)


def stale_functions(conn: psycopg.Connection[Any], functions: Sequence[Function] | None = None) -> list[str]:
    """Names of the functions whose recorded text is not this code's, or that the database lacks."""
    wanted = load_functions() if functions is None else functions
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT to_regclass('sp_schema_functions') IS NOT NULL").fetchone()
        recorded: dict[str, str] = {}
        if row is not None and row[0]:
            recorded = dict(cur.execute("SELECT name, sha256 FROM sp_schema_functions").fetchall())
        present = _present(cur, [f.name for f in wanted])
    return [f.name for f in wanted if f.name not in present or recorded.get(f.name) != f.sha256]


def missing_functions(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of this code's functions the database does not define at all."""
    names = [f.name for f in load_functions()]
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        present = _present(cur, names)
    return [name for name in names if name not in present]


def _present(cur: psycopg.Cursor[tuple[Any, ...]], names: Sequence[str]) -> set[str]:
    rows = cur.execute(
        "SELECT DISTINCT proname::text FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
        " AND proname = ANY(%s)",
        (list(names),),
    ).fetchall()
    return {name for (name,) in rows}


def apply_functions(conn: psycopg.Connection[Any], functions: Sequence[Function] | None = None) -> list[str]:
    """(Re-)create the stale functions in one transaction; returns their names (empty when all are current).

    The caller holds the migration lock. `CREATE OR REPLACE` keeps a function's oid when only its body
    changed; Postgres refuses to replace one whose result type or argument names changed, so the old
    function is dropped first, and a changed list of argument types makes an overload, so the old one
    is dropped after.
    """
    wanted = load_functions() if functions is None else functions
    with conn.transaction():
        conn.execute(_BOOKKEEPING)
    stale = set(stale_functions(conn, wanted))
    done: list[str] = []
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        for function in wanted:
            if function.name not in stale:
                continue
            _create(cur, function)
            cur.execute(
                "INSERT INTO sp_schema_functions (name, sha256) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = clock_timestamp()",
                (function.name, function.sha256),
            )
            done.append(function.name)
    for name in done:
        log.info("applied schema function", extra={"function": name})
    return done


def _create(cur: psycopg.Cursor[tuple[Any, ...]], function: Function) -> None:
    """Create or replace one function, leaving no other function of its name behind."""
    before = cur.execute(_OIDS_OF, (function.name,)).fetchall()
    statement = function.sql.encode("utf-8")  # bytes: sent as it is, no parameters
    try:
        with cur.connection.transaction():
            cur.execute(statement)
    except errors.InvalidFunctionDefinition:  # "cannot change return type of existing function"
        _drop(cur, [signature for _, signature in before])
        before = []
        cur.execute(statement)
    after = cur.execute(_OIDS_OF, (function.name,)).fetchall()
    if len(after) > len(before):  # a new argument list made an overload: the old one goes
        _drop(cur, [signature for _, signature in before])


def _drop(cur: psycopg.Cursor[tuple[Any, ...]], signatures: Sequence[str]) -> None:
    for signature in signatures:  # as Postgres printed it (`name(type, ...)`), quoted where needed
        cur.execute(sql.SQL("DROP FUNCTION {}").format(sql.SQL(signature)))
