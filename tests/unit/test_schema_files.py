"""The schema's files as shipped: numbered migrations without gaps that hold tables only, and each
function defined once, in `store/sql/functions.sql`."""

from __future__ import annotations

import re

import pytest

from sp_scheduler.store.functions import Function, load_functions, parse_functions
from sp_scheduler.store.latest import LATEST_KEPT
from sp_scheduler.store.migrate import CODE_SCHEMA_VERSION, Migration, load_migrations


def test_migration_versions_run_from_one_without_gaps() -> None:
    assert [m.version for m in load_migrations()] == list(range(1, CODE_SCHEMA_VERSION + 1))


@pytest.mark.parametrize("migration", load_migrations(), ids=lambda m: f"{m.version:04d}_{m.name}")
def test_no_migration_defines_a_function(migration: Migration) -> None:
    text = migration.sql
    assert not re.search(r"CREATE\s+(OR\s+REPLACE\s+)?FUNCTION", text, re.IGNORECASE)
    assert "$$" not in text


def test_functions_sql_defines_each_ledger_function_once() -> None:
    names = [f.name for f in load_functions()]
    assert names == [
        "sp_finish_runs",
        "sp_claim_run",
        "sp_claim_run_after",
        "sp_alert_observe",
        "sp_alert_missed",
        "sp_job_latest_track",
        "sp_job_latest_rebuild",
    ]
    for function in load_functions():
        assert function.sql.startswith(f"CREATE OR REPLACE FUNCTION {function.name}(")
        assert function.sql.endswith("$$;")
        assert function.sql.count("$$") == 2


def test_a_function_hash_follows_its_statement_not_the_comments_around_it() -> None:
    statement = "CREATE OR REPLACE FUNCTION sp_x() RETURNS int\nLANGUAGE sql AS $$\nSELECT 1\n$$;"
    (plain,) = parse_functions(statement)
    (commented,) = parse_functions(f"-- why sp_x exists\n{statement}\n-- more prose\n")
    assert plain == commented == Function("sp_x", statement)
    (changed,) = parse_functions(statement.replace("SELECT 1", "SELECT 2"))
    assert changed.sha256 != plain.sha256


def test_a_function_defined_twice_is_a_packaging_bug() -> None:
    statement = "CREATE OR REPLACE FUNCTION sp_x() RETURNS int\nLANGUAGE sql AS $$\nSELECT 1\n$$;"
    with pytest.raises(RuntimeError, match="sp_x is defined twice"):
        parse_functions(f"{statement}\n{statement}")


def test_the_summary_keeps_as_many_runs_per_job_as_the_code_reads() -> None:
    """The trigger's prune and the rebuild keep LATEST_KEPT runs per job, written as a literal in SQL."""
    by_name = {f.name: f.sql for f in load_functions()}
    assert f"OFFSET {LATEST_KEPT}))" in by_name["sp_job_latest_track"]
    assert f"LIMIT {LATEST_KEPT}) n" in by_name["sp_job_latest_rebuild"]
