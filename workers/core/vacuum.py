"""VACUUM (ANALYZE) outside a transaction, and bloat estimates from the planner's statistics.

The estimates need no extension (pgstattuple is often unavailable on managed Postgres): the expected
size of a table or btree index is computed from its row count and the average column widths in
pg_stats, and whatever the relation occupies beyond that is reported as bloat. They are estimates,
good to a few pages, and best right after ANALYZE, which is when database_cleanup takes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from workers.core.batching import Logger

VACUUM_LOCK_TIMEOUT_MS = 10_000  # autovacuum yields to a waiting VACUUM after deadlock_timeout (1 s)
PAGE_HEADER = 24
LINE_POINTER = 4
HEAP_TUPLE_HEADER = 24
INDEX_TUPLE_HEADER = 8
BTREE_SPECIAL = 16
BTREE_DEFAULT_FILLFACTOR = 90


async def vacuum_tables(conn: psycopg.AsyncConnection[Any], tables: Sequence[str], logger: Logger) -> list[str]:
    """VACUUM (ANALYZE) each table; returns those vacuumed. A table that stays locked is skipped.

    TRUNCATE false: giving empty pages at the end back to the OS needs an ACCESS EXCLUSIVE lock that
    blocks every reader; the space is reused by new rows anyway.
    """
    done: list[str] = []
    await conn.set_autocommit(True)  # VACUUM cannot run inside a transaction block
    try:
        await conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{VACUUM_LOCK_TIMEOUT_MS}ms",))
        for table in tables:
            began = time.monotonic()
            try:
                await conn.execute(sql.SQL("VACUUM (ANALYZE, TRUNCATE false) {}").format(sql.Identifier(table)))
            except errors.LockNotAvailable:
                logger.warning("vacuum skipped: table locked", extra={"table": table})
                continue
            logger.info("table vacuumed", extra={"table": table, "ms": round((time.monotonic() - began) * 1000, 1)})
            done.append(table)
    finally:
        if not conn.broken:
            await conn.execute("RESET lock_timeout")
            await conn.set_autocommit(False)
    return done


@dataclass(frozen=True, slots=True)
class Bloat:
    """One relation's size and its estimated bloat (None when statistics are missing)."""

    kind: str  # "table" or "index"
    name: str
    table: str
    size_bytes: int
    bloat_bytes: int | None
    dead_tuples: int | None = None

    @property
    def ratio(self) -> float | None:
        if self.bloat_bytes is None or self.size_bytes <= 0:
            return None
        return self.bloat_bytes / self.size_bytes

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "kind": self.kind,
            "relation": self.name,
            "table": self.table,
            "size_bytes": self.size_bytes,
            "bloat_bytes": self.bloat_bytes,
            "bloat_percent": round(ratio * 100, 1) if ratio is not None else None,
            "dead_tuples": self.dead_tuples,
        }


_RELATIONS = "SELECT to_regclass(name) FROM unnest(%(tables)s::text[]) AS name"
_TABLES = sql.SQL(
    "SELECT c.oid, c.relname, c.reltuples, c.relpages, pg_relation_size(c.oid) AS bytes, c.reloptions,"
    " s.n_dead_tup FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid"
    " WHERE c.oid IN (" + _RELATIONS + ")"
)
_INDEXES = sql.SQL(
    "SELECT ic.relname AS name, i.indrelid AS table_oid, ic.reltuples, ic.relpages, ic.reloptions,"
    " pg_relation_size(ic.oid) AS bytes, am.amname, 0 = ANY (i.indkey::int2[]) AS has_expression,"
    " ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k(attnum)"
    "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS columns"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
    " WHERE i.indrelid IN (" + _RELATIONS + ")"
)
_WIDTHS = sql.SQL(
    "SELECT c.oid AS table_oid, st.attname::text AS column, st.avg_width, st.null_frac"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = c.relname"
    " WHERE c.oid IN (" + _RELATIONS + ")"
)
_COLUMNS = sql.SQL(
    "SELECT a.attrelid AS table_oid, count(*) AS columns FROM pg_attribute a"
    " WHERE a.attrelid IN (" + _RELATIONS + ") AND a.attnum > 0 AND NOT a.attisdropped GROUP BY a.attrelid"
)


async def estimate_bloat(conn: psycopg.AsyncConnection[Any], tables: Sequence[str]) -> list[Bloat]:
    """Bloat estimates for `tables` (missing ones are ignored) and their btree indexes."""
    params = {"tables": list(tables)}
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        table_rows = await (await cur.execute(_TABLES, params)).fetchall()
        index_rows = await (await cur.execute(_INDEXES, params)).fetchall()
        width_rows = await (await cur.execute(_WIDTHS, params)).fetchall()
        column_rows = await (await cur.execute(_COLUMNS, params)).fetchall()
        block_row = await (await cur.execute("SELECT current_setting('block_size')::int AS bs")).fetchone()
    block = int(block_row["bs"]) if block_row else 8192
    widths: dict[int, dict[str, float]] = {}
    for row in width_rows:
        widths.setdefault(row["table_oid"], {})[row["column"]] = float(row["avg_width"]) * (1 - float(row["null_frac"]))
    column_counts = {row["table_oid"]: int(row["columns"]) for row in column_rows}
    names = {row["oid"]: row["relname"] for row in table_rows}
    found = [
        _table_bloat(row, widths.get(row["oid"], {}), column_counts.get(row["oid"], 0), block) for row in table_rows
    ]
    for row in index_rows:
        if row["amname"] == "btree":
            found.append(_index_bloat(row, names.get(row["table_oid"], "?"), widths.get(row["table_oid"], {}), block))
    return sorted(found, key=lambda b: (b.table, b.kind != "table", b.name))


def _fillfactor(reloptions: Sequence[str] | None, default: int) -> int:
    for option in reloptions or ():
        key, _, value = option.partition("=")
        if key == "fillfactor" and value.isdigit():
            return int(value)
    return default


def _align(size: float) -> int:
    return int(math.ceil(size / 8) * 8)


def _bloat_bytes(relpages: int, reltuples: float, tuple_size: int, usable: float, block: int) -> int | None:
    if reltuples < 0:  # never vacuumed or analyzed: the row count is unknown
        return None
    per_page = max(1, int(usable // (tuple_size + LINE_POINTER)))
    expected = math.ceil(reltuples / per_page)
    return max(0, relpages - expected) * block


def _table_bloat(row: Mapping[str, Any], widths: Mapping[str, float], columns: int, block: int) -> Bloat:
    bloat: int | None = None
    if columns and len(widths) >= columns:  # every column has statistics
        tuple_size = _align(HEAP_TUPLE_HEADER + math.ceil(columns / 8) + sum(widths.values()))
        usable = (block - PAGE_HEADER) * _fillfactor(row["reloptions"], 100) / 100
        bloat = _bloat_bytes(int(row["relpages"]), float(row["reltuples"]), tuple_size, usable, block)
    dead = row["n_dead_tup"]
    return Bloat(
        "table", row["relname"], row["relname"], int(row["bytes"]), bloat, int(dead) if dead is not None else None
    )


def _index_bloat(row: Mapping[str, Any], table: str, widths: Mapping[str, float], block: int) -> Bloat:
    bloat: int | None = None
    columns: list[str] = list(row["columns"])
    if not row["has_expression"] and columns and all(column in widths for column in columns):
        tuple_size = _align(INDEX_TUPLE_HEADER + sum(widths[column] for column in columns))
        fillfactor = _fillfactor(row["reloptions"], BTREE_DEFAULT_FILLFACTOR)
        usable = (block - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100
        pages = max(0, int(row["relpages"]) - 1)  # the metapage holds no tuples
        bloat = _bloat_bytes(pages, float(row["reltuples"]), tuple_size, usable, block)
    return Bloat("index", row["name"], table, int(row["bytes"]), bloat)
