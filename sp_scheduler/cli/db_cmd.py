"""`sp-scheduler db`: the ledger's schema."""

from __future__ import annotations

import click

from sp_scheduler.cli.state import CliState, pass_state
from sp_scheduler.store import apply_schema, connect, describe_url, schema_version


@click.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("migrate")
@pass_state
def migrate_cmd(state: CliState) -> None:
    """Apply pending schema migrations (idempotent; safe to run from several processes at once)."""
    url = state.settings.require_database_url()
    with connect(url) as conn:
        applied = apply_schema(conn)
        version = schema_version(conn)
    functions = f"; functions applied: {', '.join(applied.functions)}" if applied.functions else ""
    if applied.versions:
        versions = ", ".join(map(str, applied.versions))
        click.echo(f"migrated {describe_url(url)} to schema version {version} (applied {versions}){functions}")
    else:
        click.echo(f"{describe_url(url)} is up to date (schema version {version}){functions}")
